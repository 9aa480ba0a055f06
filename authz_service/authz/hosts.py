"""Canonical hosts, so a host-scoped rule cannot be dodged by another spelling of the host.

`Admin.Example.COM.:443`, `admin.example.com.` and `admin.example.com` name one virtual host
to every upstream: case is not significant, the trailing dot only says the name is fully
qualified, and rules never look at the port. Requests and the rules' `hosts:` are both put in
this one form, so they can be compared as plain strings. A Host that is no host at all is
refused rather than compared: it would match no rule, and skipping a host-scoped deny rule is
a bypass.
"""

from __future__ import annotations

import re
from ipaddress import IPv6Address

# A DNS name (or an IPv4 address) in canonical form: lower case, no empty label, no trailing
# dot. `_` is allowed: it occurs in real internal names. Also the hot path: most requests
# carry such a Host and need no further work.
_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
# The same for rule patterns, with the glob characters of authz/globs.py.
_NAME_PATTERN = re.compile(r"[a-z0-9_*?-]+(?:\.[a-z0-9_*?-]+)*")


class AmbiguousHost(ValueError):
    pass


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


def canonical_host_pattern(pattern: str) -> str:
    """A rule's `hosts:` entry in the form `canonical_host` gives requests; ValueError if bad."""
    if not pattern.isascii():
        raise ValueError(f"host {pattern!r}: use the ASCII (punycode) form of the name")
    if pattern.startswith("["):
        if not pattern.endswith("]"):
            raise ValueError(f"host {pattern!r}: hosts are matched without the port")
        try:
            return _ipv6_literal(pattern[1:-1])
        except AmbiguousHost as error:
            raise ValueError(f"host {pattern!r}: {error}") from None
    if ":" in pattern:
        raise ValueError(
            f"host {pattern!r}: hosts are matched without the port (an IPv6 address goes in [])"
        )
    name = pattern.lower()
    if name.endswith("."):
        name = name[:-1]
    if not _NAME_PATTERN.fullmatch(name):
        raise ValueError(f"host {pattern!r} is not a host name or a glob of one")
    return name


def _check_port(rest: str) -> None:
    """`rest` follows the host: nothing, or ":" and a port (RFC 3986 allows it empty)."""
    if rest and not (rest[0] == ":" and (len(rest) == 1 or rest[1:].isdigit())):
        raise AmbiguousHost("invalid port in host")


def _ipv6_literal(text: str) -> str:
    if "%" in text:  # a zone id (`%25eth0`) means nothing to a virtual host
        raise AmbiguousHost("IPv6 zone ids are not accepted in a host")
    try:
        address = IPv6Address(text)
    except ValueError:
        raise AmbiguousHost("invalid IPv6 literal in host") from None
    return f"[{address.compressed}]"
