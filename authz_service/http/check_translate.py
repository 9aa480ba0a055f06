"""What a gateway's HTTP auth subrequest says <-> core types. Pure functions, no I/O.

Each integration tells us the original request differently:

- Envoy `http_service`: the original method, `path_prefix` + the original path and query,
  the original Host, and the headers listed in the filter's `allowed_headers`.
- NGINX `auth_request`: a GET subrequest with every client header, plus what the location
  sets with `proxy_set_header`: X-Original-URI ($request_uri), X-Original-Method
  ($request_method), X-Original-Host ($host) and X-Real-IP ($remote_addr).
- Traefik `forwardAuth`: a GET with the client headers and X-Forwarded-Method,
  X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Uri and X-Forwarded-For.

The client address is read from a header only when the peer is a trusted proxy (see
`client_address`); everything else a header says is policy input, as on the gRPC path.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from authz_service.authn.cert_binding import thumbprint_of_xfcc
from authz_service.decisions import RequestAttributes
from authz_service.errors import UnreadableRequest
from authz_service.schema import Endpoint, HttpCheckSettings, Integration
from authz_service.services.response_policy import AllowResponse, DenyResponse
from authz_service.services.sanitise import header_value

Network = IPv4Network | IPv6Network

# Envoy's http_service removes these request headers before the upstream sees them.
ENVOY_HEADERS_TO_REMOVE = "x-envoy-auth-headers-to-remove"

_METHOD = re.compile(r"^[A-Z][A-Z0-9_-]{0,31}$")


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """The subrequest as the check endpoint received it, independent of the web framework."""

    method: str
    target: str  # the request target as sent: path and query, not decoded
    headers: Mapping[str, str]  # lower-case names, repeated headers joined
    peer: str  # the socket peer's address


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""

    # Encoded once per reply: an allow reply is shared by every warm check of its identity
    # (services/allow_cache.py), so a warm check encodes nothing.
    @functools.cached_property
    def encoded_body(self) -> bytes:
        return self.body.encode()

    @functools.cached_property
    def encoded_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """The headers as an ASGI server takes them, Content-Length included."""
        return (
            *(
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in self.headers.items()
            ),
            (b"content-length", str(len(self.encoded_body)).encode()),
        )


def join_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names; repeats joined with ", " (cookies with "; ", as HTTP/2 does)."""
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        if key in headers:
            headers[key] += ("; " if key == "cookie" else ", ") + value
        else:
            headers[key] = value
    return headers


def endpoint_for(target: str, endpoints: Sequence[Endpoint]) -> Endpoint | None:
    """The endpoint whose mount path the target is at or under."""
    path = target.split("?", 1)[0]
    for endpoint in endpoints:
        if path == endpoint.path or path.startswith(endpoint.path + "/"):
            return endpoint
    return None


def _parsed_ip(value: str) -> IPv4Address | IPv6Address | None:
    # The peers (gateways) and forwarded client addresses of a warm load repeat: parsed once
    # each; anything longer than an address with a port is parsed (and refused) uncached.
    return _cached_ip(value) if len(value) <= 64 else _ip(value)


def _ip(value: str) -> IPv4Address | IPv6Address | None:
    text = value.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ip_address(text)
    except ValueError:
        return None


_cached_ip = functools.lru_cache(maxsize=4096)(_ip)


def is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    parsed = _parsed_ip(address)
    return parsed is not None and any(parsed in network for network in trusted)


def client_address(
    header_value: str | None, peer: str, trusted: Sequence[Network], *, forwarded_for: bool
) -> str:
    """The client's address; "" when a trusted proxy did not say (never the proxy's own).

    From an untrusted peer, headers are ignored: the peer is the client. From a trusted one,
    a single-address header (X-Real-IP) is taken as is; an X-Forwarded-For list is walked
    from the right past trusted proxies, since each proxy appends the address it saw.
    """
    if not is_trusted(peer, trusted):
        return peer
    if not header_value:
        return ""
    entries = header_value.split(",") if forwarded_for else [header_value]
    chosen: IPv4Address | IPv6Address | None = None
    for entry in reversed(entries):
        chosen = _parsed_ip(entry)
        if chosen is None:
            return ""
        if not any(chosen in network for network in trusted):
            return str(chosen)
    # Every hop is a trusted proxy: the leftmost is where the request came from.
    return str(chosen) if chosen is not None else ""


def _method(value: str | None, what: str) -> str:
    method = (value or "").strip().upper()
    if not _METHOD.match(method):
        raise UnreadableRequest(f"missing or invalid {what}")
    return method


def _origin_form(value: str | None, what: str) -> str:
    """A path and query from a request target; absolute-form targets lose scheme and host."""
    uri = (value or "").strip()
    if uri[:8].lower().startswith(("http://", "https://")):
        parts = urllib.parse.urlsplit(uri)
        uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not uri.startswith("/") or any(ch in uri for ch in " \r\n\x00"):
        raise UnreadableRequest(f"missing or invalid {what}")
    return uri


def _attributes(
    method: str,
    host: str,
    path: str,
    received: ReceivedRequest,
    endpoint: Endpoint,
    source_address: str,
    settings: HttpCheckSettings,
) -> RequestAttributes:
    return RequestAttributes(
        method=method,
        host=host,
        path=path,
        headers=received.headers,
        source_address=source_address,
        context=endpoint.context,
        request_id=received.headers.get("x-request-id", ""),
        client_cert_thumbprint=_forwarded_client_cert(received, settings),
    )


def _forwarded_client_cert(received: ReceivedRequest, settings: HttpCheckSettings) -> str:
    """The client certificate's x5t#S256 from XFCC, trusted only as the setting says."""
    if not settings.trust_forwarded_client_cert:
        return ""
    if not is_trusted(received.peer, settings.trusted_proxies):
        return ""
    return thumbprint_of_xfcc(received.headers.get("x-forwarded-client-cert", ""))


def envoy_request(
    received: ReceivedRequest, endpoint: Endpoint, settings: HttpCheckSettings
) -> RequestAttributes:
    """Envoy http_service: the check request is the original one, its path behind the mount."""
    rest = received.target[len(endpoint.path) :]
    path = _origin_form(rest if rest.startswith("/") else "/" + rest, "path")
    header = received.headers.get(settings.envoy.client_address_header)
    source = client_address(header, received.peer, settings.trusted_proxies, forwarded_for=True)
    host = received.headers.get("host", "")
    return _attributes(
        _method(received.method, "method"), host, path, received, endpoint, source, settings
    )


def nginx_request(
    received: ReceivedRequest, endpoint: Endpoint, settings: HttpCheckSettings
) -> RequestAttributes:
    names = settings.nginx
    headers = received.headers
    method = _method(headers.get(names.method_header), names.method_header)
    path = _origin_form(headers.get(names.uri_header), names.uri_header)
    host = headers.get(names.host_header) or headers.get("host", "")
    source = client_address(
        headers.get(names.client_address_header),
        received.peer,
        settings.trusted_proxies,
        forwarded_for=names.client_address_header == "x-forwarded-for",
    )
    return _attributes(method, host, path, received, endpoint, source, settings)


def traefik_request(
    received: ReceivedRequest, endpoint: Endpoint, settings: HttpCheckSettings
) -> RequestAttributes:
    headers = received.headers
    method = _method(headers.get("x-forwarded-method"), "x-forwarded-method")
    path = _origin_form(headers.get("x-forwarded-uri"), "x-forwarded-uri")
    host = headers.get("x-forwarded-host") or headers.get("host", "")
    source = client_address(
        headers.get("x-forwarded-for"),
        received.peer,
        settings.trusted_proxies,
        forwarded_for=True,
    )
    return _attributes(method, host, path, received, endpoint, source, settings)


Translator = Callable[[ReceivedRequest, Endpoint, HttpCheckSettings], RequestAttributes]

REQUEST_TRANSLATORS: Mapping[Integration, Translator] = {
    "envoy": envoy_request,
    "nginx": nginx_request,
    "traefik": traefik_request,
}


def _clean(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: header_value(value) for name, value in headers.items()}


def allow_reply(integration: Integration, allow: AllowResponse) -> HttpReply:
    """200 with the identity headers, for the gateway to copy onto the upstream request.

    NGINX (`auth_request_set` + `proxy_set_header`) and Traefik (`authResponseHeaders`)
    replace or drop every header name they are told to copy, so a client's own copy never
    passes. Envoy copies `allowed_upstream_headers` and removes the names we list in
    `x-envoy-auth-headers-to-remove` (the gRPC path's `headers_to_remove`).

    With token cookies stripped, NGINX and Traefik replace the whole Cookie header with ours
    (examples/nginx, examples/traefik), so it is sent even when unchanged, and left out when
    no cookie is left; Envoy gets it only when it changed (or `cookie` to remove).
    """
    headers = _clean(allow.headers_to_set)
    if integration == "envoy":
        if allow.headers_to_remove:
            headers[ENVOY_HEADERS_TO_REMOVE] = ",".join(allow.headers_to_remove)
    elif allow.upstream_cookie is not None:
        headers.pop("cookie", None)
        if allow.upstream_cookie:
            headers["cookie"] = header_value(allow.upstream_cookie)
    return HttpReply(200, headers)


def deny_reply(
    integration: Integration, deny: DenyResponse, deny_body_header: str | None = None
) -> HttpReply:
    """The gRPC path's deny (status, headers, JSON body); for NGINX the body in a header too."""
    headers = _clean(deny.headers)
    if integration == "nginx" and deny_body_header:
        headers[deny_body_header] = header_value(deny.body)
    return HttpReply(deny.status, headers, deny.body)
