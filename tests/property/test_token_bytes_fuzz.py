"""Hypothesis over the bytes of a bearer token, through the real CheckService (local.yaml).

Property: whatever the token's bytes (raw, or base64url segments of arbitrary, JSON-like or
deeply nested content), Check answers 401 with a bearer error: never an internal error (503),
never an allow, never an exception.
"""

from __future__ import annotations

import base64
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz_service.decisions import Outcome, Reason, RequestAttributes
from authz_service.services.check import CheckService
from tests.property.conftest import LocalService

EXAMPLES = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
PAIRS = st.sampled_from([(b"[", b"]"), (b'{"":', b"}"), (b'[{"":', b"}]"), (b"[", b"}")])


def nest(pair: tuple[bytes, bytes], size: int, core: bytes) -> bytes:
    """Brackets nested until the segment is about `size` bytes long."""
    opener, closer = pair
    depth = size // (len(opener) + len(closer))
    return opener * depth + core + closer * depth


NESTED = st.builds(
    nest,
    PAIRS,
    # Shallow, or deep past Python's recursion limit while still under max_token_bytes.
    st.integers(min_value=0, max_value=200) | st.integers(min_value=4000, max_value=5500),
    st.sampled_from([b"1", b"", b'"x"', b"NaN"]),
)
SEGMENT_BYTES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    NESTED,
    st.builds(
        lambda head, body: b'{"alg":"RS256","kid":' + head + b',"x":' + body + b"}",
        st.sampled_from([b'"k"', b'"\\ud800"', b'"\xff"', b"1e999", b"9" * 5000]),
        NESTED,
    ),
)
SEGMENTS = st.one_of(
    SEGMENT_BYTES.map(b64url),
    SEGMENT_BYTES.map(lambda raw: raw.decode("latin-1")),
    st.text(max_size=40),
)
TOKENS = st.one_of(
    st.binary(min_size=1, max_size=400).map(lambda raw: raw.decode("latin-1")),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", SEGMENTS, SEGMENTS, SEGMENTS),
)


@EXAMPLES
@given(token=TOKENS)
def test_any_token_bytes_are_a_401_never_an_error(local_service: LocalService, token: str) -> None:
    service = CheckService(lambda: local_service.compiled_config)
    request = RequestAttributes(
        method="GET",
        host="api.example.com",
        path="/api/items",
        headers={"authorization": "Bearer " + token},
        source_address="203.0.113.9",
    )

    decision = local_service.run(service.check(request)).decision

    assert decision.reason is not Reason.INTERNAL_ERROR, decision
    if token.strip():
        assert decision.outcome is Outcome.UNAUTHENTICATED, decision
        assert decision.bearer_error in {"invalid_token", "invalid_request"}, decision
    else:  # "Bearer " and blanks: no token presented at all
        assert decision.reason is Reason.AUTHENTICATION_REQUIRED, decision
