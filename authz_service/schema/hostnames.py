"""The value format of a rule's `hosts:` entry: the canonical form requests are compared in.

`Admin.Example.COM.:443`, `admin.example.com.` and `admin.example.com` name one virtual host
to every upstream; rules and requests are both put in one form (lower case, no port, no
trailing dot, IPv6 literals compressed in brackets) so they compare as plain strings. The
request side (`authz/hosts.py`) uses `ipv6_literal` from here so both read IPv6 alike.
"""

from __future__ import annotations

import re
from ipaddress import IPv6Address

# A DNS name (or an IPv4 address) glob in canonical form, with the glob characters of
# authz/globs.py: lower case, no empty label, no trailing dot. `_` occurs in internal names.
_NAME_PATTERN = re.compile(r"[a-z0-9_*?-]+(?:\.[a-z0-9_*?-]+)*")


def canonical_host_pattern(pattern: str) -> str:
    """A rule's `hosts:` entry in the form `canonical_host` gives requests; ValueError if bad."""
    if not pattern.isascii():
        raise ValueError(f"host {pattern!r}: use the ASCII (punycode) form of the name")
    if pattern.startswith("["):
        if not pattern.endswith("]"):
            raise ValueError(f"host {pattern!r}: hosts are matched without the port")
        try:
            return ipv6_literal(pattern[1:-1])
        except ValueError as error:
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


def ipv6_literal(text: str) -> str:
    """`[address]` in compressed form, for the text between a host's brackets; ValueError if
    it is not an IPv6 address."""
    if "%" in text:  # a zone id (`%25eth0`) means nothing to a virtual host
        raise ValueError("IPv6 zone ids are not accepted in a host")
    try:
        address = IPv6Address(text)
    except ValueError:
        raise ValueError("invalid IPv6 literal in host") from None
    return f"[{address.compressed}]"
