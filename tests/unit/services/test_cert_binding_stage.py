"""The certificate-binding stage (RFC 8705): a bound token from its own client passes, from
another client or without a certificate it becomes a certificate_mismatch failure."""

from __future__ import annotations

from typing import Any, cast

import pytest

from authz_service.decisions import AuthMethod, AuthnFailure, Identity, Reason, RequestAttributes
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation
from authz_service.services.stages.cert_binding import CertificateBindingStage

BOUND = "bWF0Y2hpbmctdGh1bWJwcmludA"


def evaluation(presented: str, bound: str = BOUND) -> Evaluation:
    request = RequestAttributes("GET", "api", "/", client_cert_thumbprint=presented)
    found = Evaluation(request, cast(Any, None))
    found.authn = Identity("svc", AuthMethod.JWT, issuer="https://idp", bound_x5t=bound)
    return found


@pytest.mark.parametrize("explaining", [False, True])
def test_a_bound_token_from_its_certificate_passes(explaining: bool) -> None:
    found = evaluation(BOUND)
    CertificateBindingStage().decide(found, Explanation() if explaining else None)
    assert isinstance(found.authn, Identity)


@pytest.mark.parametrize("presented", ["b3RoZXItY2VydA", ""], ids=["other-cert", "no-cert"])
def test_a_bound_token_from_another_client_is_refused(presented: str) -> None:
    found = evaluation(presented)
    CertificateBindingStage().decide(found, None)
    assert isinstance(found.authn, AuthnFailure)
    assert found.authn.reason is Reason.CERTIFICATE_MISMATCH


def test_an_unbound_token_needs_no_certificate() -> None:
    found = evaluation("", bound="")
    CertificateBindingStage().decide(found, None)
    assert isinstance(found.authn, Identity)


def test_explain_names_the_certificate_binding_and_its_outcome() -> None:
    noted = Explanation()
    CertificateBindingStage().decide(evaluation("b3RoZXItY2VydA"), noted)
    assert [str(binding) for binding in noted.bindings] == [
        "certificate (x5t#S256): refused (certificate_mismatch): "
        "client certificate is not the one the token is bound to"
    ]
