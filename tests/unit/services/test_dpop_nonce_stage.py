"""The DPoP stage with `dpop.nonce: required`: a proof without the server's current nonce is
answered 401 use_dpop_nonce with a fresh nonce in DPoP-Nonce, and its jti is not used up; a
proof carrying the nonce passes as any valid proof does."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from authz_service.authn.dpop import DpopVerifier
from authz_service.authn.dpop_nonce import DpopNonces
from authz_service.decisions import Identity, Outcome, Reason
from authz_service.schema import DpopSettings, JwtProvider
from authz_service.services.explanation import Explanation
from authz_service.services.response_policy import DPOP_REASONS
from authz_service.services.stages.dpop import NONCE_HEADER, DpopStage
from tests.support.dpop_proofs import DpopClient
from tests.unit.services.conftest import RecordingStore
from tests.unit.services.test_dpop_stage import ISSUER, TOKEN, URL, evaluation

SECRET = b"a-nonce-key-all-replicas-share"


def nonce_stage(store: RecordingStore) -> tuple[DpopStage, DpopNonces]:
    nonces = DpopNonces(SECRET, lifetime_s=300, issuer=ISSUER)
    verifier = DpopVerifier({ISSUER: DpopSettings()}, store, {ISSUER: nonces})
    return DpopStage(verifier), nonces


def proof_headers(client: DpopClient, **claims: object) -> dict[str, str]:
    proof = client.proof("GET", URL, TOKEN, **claims)
    return {"authorization": f"DPoP {TOKEN}", "dpop": proof, ":scheme": "https"}


async def test_a_proof_without_a_nonce_is_asked_for_one_and_its_jti_is_not_used_up() -> None:
    client, store = DpopClient(), RecordingStore()
    dpop, nonces = nonce_stage(store)
    answer = await dpop.enforce(evaluation(proof_headers(client), client.jkt))
    assert answer is not None
    assert (answer.outcome, answer.reason, answer.bearer_error) == (
        Outcome.UNAUTHENTICATED,
        Reason.USE_DPOP_NONCE,
        "use_dpop_nonce",
    )
    assert nonces.accepts(answer.extra_headers[NONCE_HEADER], time.time())
    assert Reason.USE_DPOP_NONCE in DPOP_REASONS  # answered with a DPoP challenge
    assert store.charged == 0


async def test_a_proof_with_the_current_nonce_passes_and_is_used_once() -> None:
    client, store = DpopClient(), RecordingStore()
    dpop, nonces = nonce_stage(store)
    headers = proof_headers(client, nonce=nonces.current(time.time()))
    first = evaluation(headers, client.jkt)
    assert await dpop.enforce(first) is None
    assert isinstance(first.authn, Identity)
    assert store.charged == 1


@pytest.mark.parametrize(
    "nonce",
    [
        DpopNonces(SECRET, lifetime_s=300, issuer=ISSUER).current(time.time() - 900),
        DpopNonces(b"not-the-shared-nonce-key", lifetime_s=300, issuer=ISSUER).current(time.time()),
    ],
    ids=["expired", "forged"],
)
async def test_a_proof_with_an_expired_or_forged_nonce_is_asked_for_a_current_one(
    nonce: str,
) -> None:
    client, store = DpopClient(), RecordingStore()
    dpop, _ = nonce_stage(store)
    answer = await dpop.enforce(evaluation(proof_headers(client, nonce=nonce), client.jkt))
    assert answer is not None and answer.reason is Reason.USE_DPOP_NONCE


async def test_explain_names_the_missing_nonce() -> None:
    client, store = DpopClient(), RecordingStore()
    dpop, _ = nonce_stage(store)
    noted = Explanation()
    await dpop.explain(evaluation(proof_headers(client), client.jkt), noted)
    (check,) = noted.bindings
    assert (check.binding, check.verified, check.reason) == ("dpop", False, "use_dpop_nonce")
    assert (
        str(check) == "dpop: refused (use_dpop_nonce): DPoP proof needs the server's current nonce"
    )


def test_providers_requiring_nonces_get_them_from_their_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "dpop-nonce"
    secret.write_bytes(SECRET + b"\n")
    dpop = DpopSettings(nonce="required", nonce_secret_file=secret)
    with_nonces = JwtProvider(name="a", issuer=ISSUER, audiences=["api"], dpop=dpop)
    without = JwtProvider(name="b", issuer="https://other.example", audiences=["api"])
    verifier = DpopVerifier.for_providers([with_nonces, without], RecordingStore())
    nonces = verifier.nonces_for(ISSUER)
    assert nonces is not None
    assert DpopNonces(SECRET, lifetime_s=300, issuer=ISSUER).accepts(nonces.current(1e6), 1e6)
    assert verifier.nonces_for("https://other.example") is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"nonce": "required"}, "needs exactly one of nonce_secret_file or nonce_secret_env"),
        ({"nonce_secret_env": "X"}, "apply with dpop.nonce: required"),
    ],
)
def test_nonce_settings_need_exactly_one_secret_source_and_only_when_required(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DpopSettings.model_validate(settings)


def test_a_short_nonce_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPOP_NONCE_KEY", "short")
    settings = DpopSettings(nonce="required", nonce_secret_env="DPOP_NONCE_KEY")
    with pytest.raises(ValueError, match="shorter than 16 bytes"):
        settings.resolved_nonce_secret()
