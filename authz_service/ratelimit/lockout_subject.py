"""Which client a failed authentication counts against, for brute-force lockout.

One IPv6 host usually owns a whole /64 (SLAAC, privacy addresses), so counting per address
would give an attacker 2^64 fresh starts: IPv6 is aggregated to a configurable prefix. An
IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports) is the IPv4
client itself. Check, explain and the admin reset all go through here, so they agree.
"""

from __future__ import annotations

import ipaddress


def lockout_subject(address: str, ipv6_prefix_length: int) -> str:
    """The counter subject for a source address; anything that is not an IP is kept as is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    # The zone (`%eth0`) names the host's interface, not the client: drop it.
    unscoped = ipaddress.IPv6Address(ip.packed)
    network = ipaddress.IPv6Network((unscoped, ipv6_prefix_length), strict=False)
    return str(network)
