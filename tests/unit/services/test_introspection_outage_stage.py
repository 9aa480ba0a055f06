"""The introspection outage stage: an opaque token whose issuer could not be asked is a 503
`introspection_unavailable` in both modes; any other authentication result goes on."""

from __future__ import annotations

from typing import Any, cast

import pytest

from authz_service.decisions import (
    AuthMethod,
    AuthnFailure,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation
from authz_service.services.stages.introspection_outage import IntrospectionOutageStage


def evaluation(authn: Identity | AuthnFailure | None) -> Evaluation:
    found = Evaluation(RequestAttributes("GET", "api", "/"), cast(Any, None))
    found.authn = authn
    return found


@pytest.mark.parametrize("explaining", [False, True])
def test_an_unanswered_introspection_is_a_503(explaining: bool) -> None:
    outage = AuthnFailure(Reason.INTROSPECTION_UNAVAILABLE, "endpoint unavailable")
    answer = IntrospectionOutageStage().decide(
        evaluation(outage), Explanation() if explaining else None
    )
    assert answer is not None
    assert (answer.outcome, answer.reason) == (
        Outcome.UNAVAILABLE,
        Reason.INTROSPECTION_UNAVAILABLE,
    )


@pytest.mark.parametrize(
    "authn",
    [
        None,
        Identity("alice", AuthMethod.INTROSPECTION),
        AuthnFailure(Reason.TOKEN_INACTIVE, "token is not active"),
    ],
    ids=["anonymous", "identity", "inactive"],
)
def test_anything_else_goes_on_to_the_next_stage(authn: Identity | AuthnFailure | None) -> None:
    found = evaluation(authn)
    assert IntrospectionOutageStage().decide(found, None) is None
    assert found.authn == authn
