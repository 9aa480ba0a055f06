"""RevocationList: jti and subject revocations, and their expiry, with an injected clock."""

from __future__ import annotations

from authz_service.authn.revocation import MemoryRevocationStore, RevocationList
from authz_service.decisions import AuthMethod, Identity
from tests.support.idp import FakeClock

ISSUER = "https://idp.example/realms/demo"


def token(subject: str = "alice", jti: str = "jti-1", issued_at: float | None = 900.0) -> Identity:
    return Identity(
        principal=subject, method=AuthMethod.JWT, issuer=ISSUER, token_id=jti, issued_at=issued_at
    )


def test_a_revoked_jti_is_denied_until_its_expiry_then_forgotten() -> None:
    clock = FakeClock(1_000.0)
    revocations = RevocationList(clock)
    revocations.add_jti("jti-1", expires_at=1_060.0)

    assert revocations.is_revoked(token(jti="jti-1"))
    assert not revocations.is_revoked(token(jti="jti-2"))
    clock.advance(59.9)
    assert revocations.is_revoked(token(jti="jti-1"))
    clock.advance(0.1)
    assert not revocations.is_revoked(token(jti="jti-1"))
    assert len(revocations) == 0  # the expired entry was dropped, not kept forever


def test_revoking_a_jti_again_keeps_the_later_expiry() -> None:
    clock = FakeClock(1_000.0)
    revocations = RevocationList(clock)
    revocations.add_jti("jti-1", expires_at=1_100.0)
    revocations.add_jti("jti-1", expires_at=1_010.0)

    clock.advance(50)

    assert revocations.is_revoked(token(jti="jti-1"))
    assert len(revocations) == 1


def test_a_subject_revocation_denies_tokens_issued_before_it_and_accepts_later_ones() -> None:
    clock = FakeClock(1_000.0)
    revocations = RevocationList(clock)
    revocations.add_subject(ISSUER, "alice", before=950.0, expires_at=2_000.0)

    assert revocations.is_revoked(token("alice", issued_at=949.0))
    assert not revocations.is_revoked(token("alice", issued_at=950.0))
    assert not revocations.is_revoked(token("bob", issued_at=949.0))
    # A token without `iat` cannot prove it is newer: refused.
    assert revocations.is_revoked(token("alice", issued_at=None))


def test_a_subject_revocation_is_per_issuer() -> None:
    revocations = RevocationList(FakeClock(1_000.0))
    revocations.add_subject("https://other.example", "alice", before=950.0, expires_at=2_000.0)

    assert not revocations.is_revoked(token("alice", issued_at=900.0))


def test_a_subject_revocation_without_issuer_applies_to_every_issuer() -> None:
    # What `authz-service admin revoke --subject alice` sends when no --issuer is given.
    revocations = RevocationList(FakeClock(1_000.0))
    revocations.add_subject("", "alice", before=950.0, expires_at=2_000.0)

    assert revocations.is_revoked(token("alice", issued_at=900.0))
    assert not revocations.is_revoked(token("alice", issued_at=960.0))
    assert not revocations.is_revoked(token("bob", issued_at=900.0))


def test_a_subject_revocation_ends_at_its_expiry() -> None:
    clock = FakeClock(1_000.0)
    revocations = RevocationList(clock)
    revocations.add_subject(ISSUER, "alice", before=950.0, expires_at=1_100.0)

    clock.advance(100)

    assert not revocations.is_revoked(token("alice", issued_at=900.0))
    assert len(revocations) == 0


def test_a_later_subject_revocation_moves_the_cut_off_forward_only() -> None:
    revocations = RevocationList(FakeClock(1_000.0))
    revocations.add_subject(ISSUER, "alice", before=950.0, expires_at=2_000.0)
    revocations.add_subject(ISSUER, "alice", before=900.0, expires_at=2_000.0)

    assert revocations.is_revoked(token("alice", issued_at=920.0))
    revocations.add_subject(ISSUER, "alice", before=980.0, expires_at=2_000.0)
    assert revocations.is_revoked(token("alice", issued_at=970.0))


def test_apply_reads_the_published_message_formats_and_ignores_unknown_kinds() -> None:
    revocations = RevocationList(FakeClock(1_000.0))

    revocations.apply({"kind": "jti", "jti": "jti-9", "expires_at": 1_500})
    revocations.apply(
        {
            "kind": "subject",
            "issuer": ISSUER,
            "subject": "carol",
            "before": 990,
            "expires_at": 1_500,
        }
    )
    revocations.apply({"kind": "something-else", "jti": "jti-1"})

    assert len(revocations) == 2
    assert revocations.is_revoked(token("dave", jti="jti-9"))
    assert revocations.is_revoked(token("carol", jti="x", issued_at=980.0))
    assert not revocations.is_revoked(token("dave", jti="jti-1"))


def test_an_empty_list_revokes_nothing() -> None:
    assert not RevocationList(FakeClock()).is_revoked(token())


async def test_the_memory_store_records_into_its_list() -> None:
    clock = FakeClock(1_000.0)
    store = MemoryRevocationStore(RevocationList(clock))

    await store.revoke_jti("jti-1", 1_010.0)
    await store.revoke_subject(ISSUER, "bob", 990.0, 1_010.0)

    assert store.revocations.is_revoked(token(jti="jti-1"))
    assert store.revocations.is_revoked(token("bob", jti="x", issued_at=980.0))
    clock.advance(10)
    assert not store.revocations.is_revoked(token(jti="jti-1"))
