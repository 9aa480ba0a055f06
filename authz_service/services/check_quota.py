"""Rate-limit descriptors for the one-call mode, built from the request and the identity.

Pure: it turns `check_quota` config, a request and an identity into descriptor entries, the
way Envoy's route `rate_limits` actions would, with the identity Check just established.
"""

from __future__ import annotations

from collections.abc import Callable

from authz_service.authz.hosts import AmbiguousHost, canonical_host
from authz_service.decisions import Identity, RequestAttributes
from authz_service.schema import CheckQuota, QuotaEntry

Entry = tuple[str, str]
_Resolver = Callable[[RequestAttributes, Identity | None], str]

_SOURCES: dict[str, _Resolver] = {
    "client_ip": lambda request, _identity: request.source_address,
    "principal": lambda _request, identity: identity.principal if identity else "",
    "tier": lambda _request, identity: identity.tier if identity else "",
    "auth_method": lambda _request, identity: identity.method.value if identity else "",
    "method": lambda request, _identity: request.method.upper(),
    "host": lambda request, _identity: _canonical_host(request.host),
    "path": lambda request, _identity: request.path_without_query,
    "bound_key": lambda _request, identity: bound_key(identity),
}


def bound_key(identity: Identity | None) -> str:
    """The key a sender-constrained token is bound to: one counter per client key, however
    many subjects or tokens it holds."""
    if identity is None:
        return ""
    if identity.bound_jkt:
        return "jkt:" + identity.bound_jkt
    return "x5t:" + identity.bound_x5t if identity.bound_x5t else ""


def _canonical_host(host: str) -> str:
    """One counter per host however it is spelled (`API.example.com.:443` is api.example.com).

    Quota is only counted after RBAC allowed the request, so the host has already been read.
    """
    try:
        return canonical_host(host)
    except AmbiguousHost:
        return ""  # no value drops the descriptor, as for any missing source


def _resolver(entry: QuotaEntry) -> _Resolver:
    if entry.value is not None:
        literal = entry.value
        return lambda _request, _identity: literal
    if entry.source is not None:
        return _SOURCES[entry.source]
    if entry.header is not None:
        header = entry.header
        return lambda request, _identity: request.headers.get(header, "")
    context_key = entry.context or ""
    return lambda request, _identity: request.context.get(context_key, "")


class CheckQuotaDescriptors:
    def __init__(self, config: CheckQuota) -> None:
        self.domain = config.domain
        self._descriptors = [
            (
                frozenset(descriptor.methods),
                [(entry.key, _resolver(entry)) for entry in descriptor.entries],
            )
            for descriptor in config.descriptors
        ]

    def descriptors(
        self, request: RequestAttributes, identity: Identity | None
    ) -> list[list[Entry]]:
        method = request.method.upper()
        built: list[list[Entry]] = []
        for methods, entries in self._descriptors:
            if methods and method not in methods:
                continue
            values = [(key, resolve(request, identity)) for key, resolve in entries]
            # Like Envoy's actions: a missing value drops the whole descriptor.
            if all(value for _, value in values):
                built.append(values)
        return built
