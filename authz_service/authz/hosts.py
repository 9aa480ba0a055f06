"""Canonical hosts, so a host-scoped rule cannot be dodged by another spelling of the host.

`Admin.Example.COM.:443`, `admin.example.com.` and `admin.example.com` name one virtual host
to every upstream: case is not significant, the trailing dot only says the name is fully
qualified, and rules never look at the port. Requests and the rules' `hosts:` are both put in
this one form (the rules' side in schema/hostnames.py), so they can be compared as plain
strings. A Host that is no host at all is
refused rather than compared: it would match no rule, and skipping a host-scoped deny rule is
a bypass.
"""

from __future__ import annotations

import re

from authz_service.errors import AmbiguousRequest
from authz_service.schema import ipv6_literal

# A DNS name (or an IPv4 address) in canonical form: lower case, no empty label, no trailing
# dot. `_` is allowed: it occurs in real internal names. Also the hot path: most requests
# carry such a Host and need no further work.
_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


class AmbiguousHost(AmbiguousRequest):
    """A Host an upstream could read differently from us (not ASCII, a bad port...)."""


def canonical_host(raw: str) -> str:
    """`raw` (a Host header or `:authority`) lower-cased, without port or trailing dot.

    IPv6 literals keep their brackets in compressed form (`[::1]`). "" stays "" (no Host).
    Raises AmbiguousHost for anything else: non-ASCII, empty labels, a non-numeric port,
    an unbracketed IPv6 address, characters no host name has.
    """
    if not raw or _NAME.fullmatch(raw):
        return raw
    if not raw.isascii():  # before lower(): "K" (Kelvin sign) lower-cases to ASCII "k"
        raise AmbiguousHost("host is not ASCII")
    if raw.startswith("["):
        end = raw.find("]")
        if end == -1:
            raise AmbiguousHost("unterminated IPv6 literal in host")
        _check_port(raw[end + 1 :])
        return _ipv6_literal(raw[1:end])
    name, colon, port = raw.rpartition(":")
    if not colon:
        name = raw
    elif ":" in name:
        raise AmbiguousHost("an IPv6 address in a host must be in brackets")
    else:
        _check_port(colon + port)
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if not _NAME.fullmatch(name):
        raise AmbiguousHost("not a host name")
    return name


def _check_port(rest: str) -> None:
    """`rest` follows the host: nothing, or ":" and a port (RFC 3986 allows it empty)."""
    if rest and not (rest[0] == ":" and (len(rest) == 1 or rest[1:].isdigit())):
        raise AmbiguousHost("invalid port in host")


def _ipv6_literal(text: str) -> str:
    try:
        return ipv6_literal(text)
    except ValueError as error:
        raise AmbiguousHost(str(error)) from None
