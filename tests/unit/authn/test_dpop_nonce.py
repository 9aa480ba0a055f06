"""DPoP server nonces (RFC 9449 8): derived from a time window under a shared secret, so every
replica accepts the nonce any of them handed out, for one to two lifetimes, with no store."""

from __future__ import annotations

import pytest

from authz_service.authn.dpop_nonce import DpopNonces

SECRET = b"0123456789abcdef-shared-by-replicas"
ISSUER = "https://idp.example"


def nonces(secret: bytes = SECRET, issuer: str = ISSUER) -> DpopNonces:
    return DpopNonces(secret, lifetime_s=300, issuer=issuer)


def test_a_nonce_handed_out_by_one_replica_is_accepted_by_another() -> None:
    handed_out = nonces().current(now=1_000_000)
    assert nonces().accepts(handed_out, now=1_000_001)


def test_a_nonce_lives_for_one_to_two_lifetimes() -> None:
    window_start = 300 * 4000
    handed_out = nonces().current(now=window_start + 299)
    assert nonces().accepts(handed_out, now=window_start + 300 + 299)  # the next window
    assert not nonces().accepts(handed_out, now=window_start + 600)  # two windows on


def test_a_nonce_from_a_replica_whose_clock_runs_ahead_by_less_than_a_window_is_accepted() -> None:
    ahead = nonces().current(now=300 * 4000 + 1)
    assert nonces().accepts(ahead, now=300 * 4000 - 1)


@pytest.mark.parametrize(
    "other",
    [nonces(secret=b"another-secret-of-16-bytes"), nonces(issuer="https://other-idp.example")],
    ids=["other-secret", "other-issuer"],
)
def test_a_nonce_made_under_another_secret_or_for_another_issuer_is_refused(
    other: DpopNonces,
) -> None:
    assert not nonces().accepts(other.current(now=1_000_000), now=1_000_000)


@pytest.mark.parametrize(
    "nonce",
    [None, 42, "", "no-dot", ".mac", "zz.mac", "0x1.mac", "1" * 40 + ".mac", "d05.", "d05.forged"],
)
def test_a_malformed_or_forged_nonce_is_refused(nonce: object) -> None:
    assert not nonces().accepts(nonce, now=300 * 0xD05)


def test_a_nonce_spelled_another_way_is_refused() -> None:
    now = 300 * 0xD05  # a window whose hex has letters
    window_hex, _, mac = nonces().current(now).partition(".")
    assert nonces().accepts(f"{window_hex}.{mac}", now)
    assert not nonces().accepts(f"0{window_hex}.{mac}", now)
    assert not nonces().accepts(f"{window_hex.upper()}.{mac}", now)
