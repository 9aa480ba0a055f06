#!/usr/bin/env bash
# xds-protos ships its own (older) copy of the opentelemetry.proto modules, overwriting the
# files of opentelemetry-proto that the OTLP exporter needs (InstrumentationScope). Reinstall
# opentelemetry-proto last so its newer, compatible files win. Usage: fix-otel-protos.sh PYTHON
set -euo pipefail
PY="${1:-python3}"
version=$("$PY" -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')
"$PY" -m pip install --quiet --force-reinstall --no-deps "opentelemetry-proto==${version}"
"$PY" -c 'from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope'
