"""The allow answer of an (identity, rule, policy) is built once per config and reused; an
answer that depends on the request (its Cookie header) never is. Both transports use it:
the gRPC CheckResponse and the HTTP check's encoded reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from authz_service.decisions import Decision, Outcome, Reason, RequestAttributes
from authz_service.http.check_translate import HttpReply, allow_reply
from authz_service.services.allow_cache import AllowAnswerCache
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.response_policy import AllowResponse, ResponsePolicy
from tests.unit.services.test_response_policy import ALICE, responses


@dataclass
class _Compiled:
    """The one part of a compiled config the cache reads."""

    responses: ResponsePolicy


def compiled() -> CompiledConfig:
    # Credentials stripped: token cookies are cut out of the Cookie header sent upstream.
    return cast(CompiledConfig, _Compiled(responses({"strip_credentials": True})))


def allowed(rule: str = "api") -> Decision:
    return Decision(Outcome.ALLOW, Reason.ALLOWED, rule=rule, policy="public", identity=ALICE)


def request(**headers: str) -> RequestAttributes:
    return RequestAttributes(method="GET", host="api.example.com", path="/x", headers=headers)


class CountingBuild:
    def __init__(self) -> None:
        self.built: list[AllowResponse] = []

    def __call__(self, allow: AllowResponse) -> HttpReply:
        self.built.append(allow)
        return allow_reply("envoy", allow)


def test_a_repeated_identity_and_rule_reuses_the_answer_built_the_first_time() -> None:
    build = CountingBuild()
    cache: AllowAnswerCache[Any] = AllowAnswerCache(build)
    config = compiled()

    first = cache.answer(config, allowed(), request())
    again = cache.answer(config, allowed(), request())

    assert again is first
    assert len(build.built) == 1
    assert first.headers["x-user-id"] == "alice"


def test_another_rule_or_a_reloaded_config_builds_a_new_answer() -> None:
    build = CountingBuild()
    cache: AllowAnswerCache[Any] = AllowAnswerCache(build)
    config = compiled()

    cache.answer(config, allowed("api"), request())
    cache.answer(config, allowed("other"), request())
    cache.answer(compiled(), allowed("other"), request())

    assert len(build.built) == 3


def test_an_answer_cutting_a_token_cookie_is_built_for_its_request_every_time() -> None:
    build = CountingBuild()
    cache: AllowAnswerCache[Any] = AllowAnswerCache(build)
    config = compiled()

    answers = [
        cache.answer(config, allowed(), request(cookie=f"theme=dark; access_token=t{n}"))
        for n in range(2)
    ]

    assert len(build.built) == 2
    assert all(answer.headers.get("cookie") == "theme=dark" for answer in answers)
