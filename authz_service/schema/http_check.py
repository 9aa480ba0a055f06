"""The `http_check:` section: the HTTP check endpoint for gateways that speak plain HTTP.

Envoy's ext_authz `http_service` mode, NGINX `auth_request` and Traefik `forwardAuth` each
ask an HTTP server "may this request pass?" in their own way. Each integration is mounted on
a path of its own, with a fixed policy context (what Envoy's `context_extensions` carry on
the gRPC path): the gateway's configuration picks the URL, so no client can choose a policy.

    http_check:
      listen: 127.0.0.1:9003
      trusted_proxies: [127.0.0.1/32, 10.0.0.0/8]
      endpoints:
        - { path: /nginx, integration: nginx, context: { policy: public } }
        - { path: /traefik, integration: traefik }
        - { path: /envoy, integration: envoy }   # Envoy http_service path_prefix: /envoy
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

from pydantic import Field, field_validator, model_validator

from authz_service.schema.base import Strict, header_name
from authz_service.schema.server import ConnectionLimits

Integration = Literal["envoy", "nginx", "traefik"]

_MOUNT = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


class Endpoint(Strict):
    """One mount: requests under `path` are read the way `integration` sends them."""

    path: str
    integration: Integration
    # Like Envoy's per-route context_extensions, e.g. {policy: internal}.
    context: dict[str, str] = Field(default_factory=dict)

    @field_validator("path")
    @classmethod
    def _mount(cls, value: str) -> str:
        if not _MOUNT.match(value):
            raise ValueError(f"{value!r} must be an absolute path such as /nginx (no trailing /)")
        return value


def _default_endpoints() -> list[Endpoint]:
    return [
        Endpoint(path="/envoy", integration="envoy"),
        Endpoint(path="/nginx", integration="nginx"),
        Endpoint(path="/traefik", integration="traefik"),
    ]


class NginxSettings(Strict):
    """Headers the `auth_request` location sets with `proxy_set_header` (see examples/nginx)."""

    uri_header: str = "x-original-uri"  # $request_uri (path and query)
    method_header: str = "x-original-method"  # $request_method (subrequests are GETs)
    host_header: str = "x-original-host"  # $host; the Host header when absent
    client_address_header: str = "x-real-ip"  # $remote_addr
    # The JSON deny body is also sent in this header: nginx drops the subrequest's body, and
    # `auth_request_set` + `return <status> $var` hand it to the client unchanged.
    deny_body_header: str | None = "x-authz-deny-body"

    @field_validator("uri_header", "method_header", "host_header", "client_address_header")
    @classmethod
    def _lower(cls, value: str) -> str:
        return header_name(value)

    @field_validator("deny_body_header")
    @classmethod
    def _lower_optional(cls, value: str | None) -> str | None:
        return None if value is None else header_name(value)


class EnvoyHttpSettings(Strict):
    """Envoy `http_service`: it forwards the original method, `path_prefix` + path, Host."""

    # Envoy appends the peer to x-forwarded-for (use_remote_address); list it in allowed_headers.
    client_address_header: str = "x-forwarded-for"

    @field_validator("client_address_header")
    @classmethod
    def _lower(cls, value: str) -> str:
        return header_name(value)


DEFAULT_AUTHZEN_ACTIONS = {
    "can_read": "GET",
    "can_create": "POST",
    "can_update": "PUT",
    "can_delete": "DELETE",
}


class AuthzenSettings(Strict):
    """The OpenID AuthZEN Authorization API 1.0 access evaluation endpoint
    (`POST /access/v1/evaluation` on the HTTP check port; services/authzen.py)."""

    # Serve `POST /access/v1/evaluation` and `/.well-known/authzen-configuration`.
    enabled: bool = False
    # An action name -> the HTTP method the policy decides it as. An action that is an HTTP
    # method itself (GET, POST...) or carries `properties.method` needs no entry.
    actions: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_AUTHZEN_ACTIONS))
    # The host the policy sees when the resource does not name one (`properties.host`).
    default_host: str = "authzen"

    @field_validator("actions")
    @classmethod
    def _methods(cls, value: dict[str, str]) -> dict[str, str]:
        for name, method in value.items():
            if not method.isalpha():
                raise ValueError(f"action {name!r}: {method!r} is not an HTTP method")
        return {name: method.upper() for name, method in value.items()}


class HttpCheckSettings(Strict):
    """The HTTP check port. Read at start; changing `listen` needs a restart."""

    listen: str = "127.0.0.1:9003"
    # The HTTP server: aiohttp, or granian (a Rust HTTP stack, cheaper per check; with it a
    # connection past max_connections waits unaccepted instead of being closed, idle ones
    # close after the shorter of header_timeout_s and idle_timeout_s, and the port has no
    # authz_connections_* series: http/granian_server.py).
    server: Literal["aiohttp", "granian"] = "aiohttp"
    # Only requests from these peers may name the client address (X-Real-IP, X-Forwarded-For);
    # from any other peer the socket address is the client. Loopback by default.
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(
        default_factory=lambda: [ip_network("127.0.0.1/32"), ip_network("::1/128")]
    )
    endpoints: list[Endpoint] = Field(default_factory=_default_endpoints, min_length=1)
    # Certificate-bound tokens (RFC 8705): read the client certificate's hash from
    # x-forwarded-client-cert, only from a trusted proxy that sanitises it (Envoy
    # forward_client_cert_details: SANITIZE_SET); off, a bound token never passes here.
    trust_forwarded_client_cert: bool = False
    # Beyond this many checks in flight, new ones are answered 503 `overloaded` at once
    # (nginx and Traefik then refuse the request: fail closed) instead of queueing.
    max_concurrent_requests: int | None = Field(default=256, ge=1)
    connections: ConnectionLimits = ConnectionLimits()
    nginx: NginxSettings = NginxSettings()
    envoy: EnvoyHttpSettings = EnvoyHttpSettings()
    authzen: AuthzenSettings = AuthzenSettings()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, list):
            return [
                ip_network(item, strict=False) if isinstance(item, str) else item for item in value
            ]
        return value

    @model_validator(mode="after")
    def _distinct_mounts(self) -> HttpCheckSettings:
        paths = [endpoint.path for endpoint in self.endpoints]
        for index, path in enumerate(paths):
            for other in paths[:index]:
                if path == other or path.startswith(other + "/") or other.startswith(path + "/"):
                    raise ValueError(f"endpoint paths {other!r} and {path!r} overlap")
        return self
