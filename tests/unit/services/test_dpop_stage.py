"""The DPoP stage in both modes: a bound token needs a fresh proof by its key, sent with the
DPoP scheme; enforce uses the proof up, explain only looks."""

from __future__ import annotations

from typing import Any, cast

from authz_service.authn.dpop import DpopVerifier
from authz_service.decisions import (
    AuthMethod,
    AuthnFailure,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from authz_service.schema import DpopSettings
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation
from authz_service.services.stages.dpop import DpopStage
from tests.support.dpop_proofs import DpopClient
from tests.unit.services.conftest import RecordingStore

ISSUER = "https://idp.example"
TOKEN = "eyJ.bound.token"
URL = "https://api.example/orders"


def stage(store: RecordingStore, **settings: Any) -> DpopStage:
    return DpopStage(DpopVerifier({ISSUER: DpopSettings(**settings)}, store))


def evaluation(headers: dict[str, str], jkt: str = "") -> Evaluation:
    request = RequestAttributes("GET", "api.example", "/orders?page=2", headers=headers)
    found = Evaluation(request, cast(Any, None))  # the stage reads no compiled config
    found.authn = Identity("alice", AuthMethod.JWT, issuer=ISSUER, bound_jkt=jkt)
    return found


def dpop_request(client: DpopClient, **proof: Any) -> dict[str, str]:
    return {
        "authorization": f"DPoP {TOKEN}",
        "dpop": client.proof("GET", URL, TOKEN, **proof),
        ":scheme": "https",
    }


def reason(found: Evaluation) -> Reason | None:
    return found.authn.reason if isinstance(found.authn, AuthnFailure) else None


async def test_a_valid_proof_keeps_the_identity_and_is_used_up_once_enforced() -> None:
    client, store = DpopClient(), RecordingStore()
    dpop = stage(store)
    headers = dpop_request(client)
    first = evaluation(headers, client.jkt)
    assert dpop.applies_to(first)
    assert await dpop.enforce(first) is None
    assert isinstance(first.authn, Identity)
    again = evaluation(headers, client.jkt)
    await dpop.enforce(again)
    assert reason(again) is Reason.DPOP_PROOF_REPLAYED


async def test_explain_verifies_the_proof_and_records_nothing() -> None:
    client, store = DpopClient(), RecordingStore()
    dpop = stage(store)
    headers = dpop_request(client)
    for _ in range(2):
        found = evaluation(headers, client.jkt)
        await dpop.explain(found, Explanation())
        assert isinstance(found.authn, Identity)
    assert store.charged == 0


async def test_a_bound_token_without_a_proof_or_as_bearer_is_refused() -> None:
    client, store = DpopClient(), RecordingStore()
    dpop = stage(store)
    missing = evaluation({"authorization": f"DPoP {TOKEN}"}, client.jkt)
    await dpop.enforce(missing)
    assert reason(missing) is Reason.DPOP_PROOF_MISSING
    as_bearer = evaluation({**dpop_request(client), "authorization": f"Bearer {TOKEN}"}, client.jkt)
    await dpop.enforce(as_bearer)
    assert reason(as_bearer) is Reason.INVALID_TOKEN
    assert isinstance(as_bearer.authn, AuthnFailure)
    assert "Bearer" in as_bearer.authn.message


async def test_a_proof_by_another_key_is_an_invalid_proof() -> None:
    client, store = DpopClient(), RecordingStore()
    found = evaluation(dpop_request(DpopClient()), client.jkt)
    await stage(store).enforce(found)
    assert reason(found) is Reason.INVALID_DPOP_PROOF
    assert isinstance(found.authn, AuthnFailure)
    assert found.authn.bearer_error == "invalid_dpop_proof"


async def test_a_provider_requiring_dpop_refuses_its_unbound_tokens() -> None:
    store = RecordingStore()
    found = evaluation({"authorization": f"Bearer {TOKEN}"})
    dpop = stage(store, required=True)
    assert dpop.applies_to(found)
    await dpop.enforce(found)
    assert reason(found) is Reason.INVALID_TOKEN
    relaxed = evaluation({"authorization": f"Bearer {TOKEN}"})
    assert not stage(store).applies_to(relaxed)


async def test_the_replay_store_down_fails_closed_unless_told_otherwise() -> None:
    client, store = DpopClient(), RecordingStore()
    store.down = True
    closed = evaluation(dpop_request(client), client.jkt)
    answer = await stage(store).enforce(closed)
    assert answer is not None
    assert (answer.outcome, answer.reason) == (Outcome.UNAVAILABLE, Reason.RATE_LIMIT_UNAVAILABLE)
    opened = evaluation(dpop_request(client), client.jkt)
    await stage(store, failure_mode="allow").enforce(opened)
    assert isinstance(opened.authn, Identity)


async def test_explain_names_the_binding_checked_and_why_it_failed_without_secrets() -> None:
    client, store = DpopClient(), RecordingStore()
    dpop = stage(store)
    good, noted = evaluation(dpop_request(client), client.jkt), Explanation()
    await dpop.explain(good, noted)
    assert [str(binding) for binding in noted.bindings] == ["dpop: proof verified, jti unused"]
    headers = dpop_request(client)
    headers["dpop"] = DpopClient().proof("GET", URL, TOKEN)
    bad, noted = evaluation(headers, client.jkt), Explanation()
    await dpop.explain(bad, noted)
    (check,) = noted.bindings
    binding = str(check)
    assert binding.startswith("dpop: refused (invalid_dpop_proof): proof key is not the key")
    assert TOKEN not in binding and headers["dpop"] not in binding and client.jkt not in binding


async def test_an_unbound_token_sent_with_the_dpop_scheme_is_refused() -> None:
    client, store = DpopClient(), RecordingStore()
    found = evaluation(dpop_request(client))  # a proof, but the token has no cnf.jkt
    await stage(store).enforce(found)
    assert isinstance(found.authn, AuthnFailure)
    assert (found.authn.reason, found.authn.message) == (
        Reason.INVALID_TOKEN,
        "DPoP scheme with a token that is not DPoP-bound",
    )
