"""The test files of `authz-service test`: requests, who sends them, and the expected answer.

A test file sits next to the config it tests (`local.yaml` -> `local.tests.yaml`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from authz_service.schema.base import Strict, header_name


class TestRequest(Strict):
    method: str = "GET"
    host: str = "localhost"
    path: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    source_address: str = "192.0.2.10"
    # The mTLS client certificate's principal (SPIFFE ID or subject), as Envoy passes it.
    peer_principal: str = ""
    # Envoy's context_extensions, e.g. {policy: internal}.
    context: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _lower(cls, value: dict[str, str]) -> dict[str, str]:
        return {header_name(name): text for name, text in value.items()}


class TestToken(Strict):
    """A JWT minted for the test from these claims (iss, aud, iat, exp filled in when absent),
    signed with a key made for this run that the provider trusts offline."""

    provider: str | None = None  # the jwt_providers name; default the first one
    claims: dict[str, Any] = Field(default_factory=dict)


class Expectation(Strict):
    """What the answer must be; a field left out is not compared."""

    decision: Literal["allow", "unauthenticated", "forbidden", "rate_limited", "unavailable"]
    reason: str | None = None
    rule: str | None = None
    policy: str | None = None
    # Headers the upstream gets on allow (identity headers); null: the header must be absent.
    headers: dict[str, str | None] = Field(default_factory=dict)
    # The would-be decision of shadow rules or a shadow policy.
    shadow_decision: (
        Literal["allow", "unauthenticated", "forbidden", "rate_limited", "unavailable"] | None
    ) = None

    @field_validator("headers")
    @classmethod
    def _lower(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        return {header_name(name): text for name, text in value.items()}


class PolicyTest(Strict):
    name: str = Field(min_length=1)
    request: TestRequest
    token: TestToken | None = None
    expect: Expectation


class PolicyTestFile(Strict):
    tests: list[PolicyTest] = Field(min_length=1)
