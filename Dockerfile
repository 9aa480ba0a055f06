# authz_service: the ext_authz + rate-limit gRPC service Envoy calls (port 9001).
#
#   docker build -t authz-service .         (or: podman build; --build-arg PIP_INDEX_URL=...)
#   docker run -v "$PWD/compose/authz:/etc/authz:ro" -p 9001:9001 authz-service
#
# The config is read from /etc/authz/config.yaml; its directory is watched, so mounting a
# directory (or a Kubernetes ConfigMap) there gives hot reload.

# -- build: install the package and its dependencies into a virtualenv ------------------------
FROM python:3.11-slim AS build
# The package index pip installs from (a mirror or a proxy of PyPI); only the build stage
# sees it.
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_INDEX_URL=$PIP_INDEX_URL
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (a layer that survives source edits), then the package itself.
COPY pyproject.toml README.md ./
COPY scripts/fix-otel-protos.sh ./scripts/
RUN mkdir authz_service && touch authz_service/__init__.py \
    && pip install . && pip uninstall -y authz-service && rm -rf authz_service \
    && scripts/fix-otel-protos.sh python
COPY authz_service ./authz_service
RUN pip install --no-deps . && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

# -- runtime: the virtualenv only, as an unprivileged user -------------------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 authz \
    && useradd --system --uid 10001 --gid authz --no-create-home --shell /usr/sbin/nologin authz
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 9001
# gRPC health (grpc.health.v1, the same check as the Kubernetes probes): healthy = SERVING.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["authz-service", "health", "--address", "127.0.0.1:9001"]
ENTRYPOINT ["authz-service"]
CMD ["serve", "--config", "/etc/authz/config.yaml"]
