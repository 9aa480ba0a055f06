"""Which client a failed authentication is counted against (brute-force lockout)."""

from __future__ import annotations

import pytest

from authz_service.ratelimit.lockout_subject import lockout_subject


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"),
        ("2001:db8:1:2::1", "2001:DB8:1:2:0:0:0:1"),  # another spelling of the same address
        ("2001:db8:1:2::1", "2001:0db8:0001:0002::abcd"),
        ("fe80::1%eth0", "fe80::2"),  # the zone is not part of the client
        ("::ffff:198.51.100.7", "198.51.100.7"),  # IPv4-mapped IPv6 is the IPv4 client
        ("::FFFF:c633:6407", "198.51.100.7"),
    ],
)
def test_addresses_of_one_client_share_a_subject(first: str, second: str) -> None:
    assert lockout_subject(first, 64) == lockout_subject(second, 64)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:3::1"),  # the next /64
        ("198.51.100.7", "198.51.100.8"),  # IPv4 stays per address
        ("::ffff:198.51.100.7", "::ffff:198.51.100.8"),
        ("::198.51.100.7", "198.51.100.7"),  # IPv4-compatible is not IPv4-mapped
    ],
)
def test_different_clients_have_different_subjects(first: str, second: str) -> None:
    assert lockout_subject(first, 64) != lockout_subject(second, 64)


def test_ipv6_subject_is_the_configured_prefix() -> None:
    assert lockout_subject("2001:db8:1:2::1", 64) == "2001:db8:1:2::/64"
    assert lockout_subject("2001:db8:1:2::1", 48) == lockout_subject("2001:db8:1:ffff::9", 48)
    assert lockout_subject("2001:db8::1", 128) != lockout_subject("2001:db8::2", 128)


@pytest.mark.parametrize("address", ["not-an-ip", "unix:/run/envoy.sock", "198.51.100.7:443"])
def test_anything_else_is_counted_as_written(address: str) -> None:
    assert lockout_subject(address, 64) == address
