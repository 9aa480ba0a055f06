"""Fakes for the pipeline's unit tests: a quota store that records what it is asked, an
authenticator that answers from a table, and a compiled config built around them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.config.loader import load_config_file
from authz_service.decisions import AuthMethod, AuthnFailure, Identity, Reason, RequestAttributes
from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.store import Hit, StoreUnavailable
from authz_service.services.compiled_config import CompiledConfig, QuotaStoreHolder, compile_config
from authz_service.services.pipeline import Evaluation
from tests.support.authz_config import write_config

CLIENT = "198.51.100.7"
DOMAIN = "unit"
CREDENTIAL = "x-test-credential"  # the fake authenticator's only source

READER = Identity("reader", AuthMethod.API_KEY, roles=frozenset({"reader"}), tier="gold")
ADMIN = Identity("root", AuthMethod.API_KEY, roles=frozenset({"admin"}), tier="gold")
NOBODY = Identity("nobody", AuthMethod.API_KEY, tier="gold")
BAD_KEY = AuthnFailure(Reason.INVALID_API_KEY, "API key is not valid")
CREDENTIALS: Mapping[str, Identity | AuthnFailure] = {
    "reader": READER,
    "admin": ADMIN,
    "nobody": NOBODY,
    "wrong": BAD_KEY,
}


class RecordingStore(MemoryStore):
    """The memory store, keeping every batch of hits it is asked; `down` makes it fail."""

    def __init__(self) -> None:
        super().__init__("unit:")
        self.asked: list[tuple[Hit, ...]] = []
        self.down = False

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        self.asked.append(tuple(hits))
        if self.down:
            raise StoreUnavailable("recording store: down")
        return await super().apply(hits, now)

    @property
    def charged(self) -> int:
        """Hits that counted something (a look is a hit of 0)."""
        return sum(hit.hits for batch in self.asked for hit in batch)


class FakeTokenCache:
    hits = 0


class FakeAuthenticator:
    """Answers from CREDENTIALS by the value of one header; nothing presented: None."""

    def __init__(self, answers: Mapping[str, Identity | AuthnFailure] = CREDENTIALS) -> None:
        self.answers = answers
        self.token_cache = FakeTokenCache()
        self.asked: list[RequestAttributes] = []
        self.release: asyncio.Event | None = None  # set: authenticate waits for it
        self.waiting = asyncio.Event()  # set once a call waits for `release`

    async def authenticate(self, request: RequestAttributes) -> Identity | AuthnFailure | None:
        self.asked.append(request)
        if self.release is not None:
            self.waiting.set()
            await self.release.wait()
        presented = request.headers.get(CREDENTIAL)
        if presented is None:
            return None
        return self.answers.get(presented, BAD_KEY)

    def describe_credential(
        self, request: RequestAttributes, authn: Identity | AuthnFailure | None
    ) -> str:
        return (
            f"test credential from header {CREDENTIAL}" if CREDENTIAL in request.headers else "none"
        )


RULES: list[dict[str, Any]] = [
    {"name": "docs", "match": {"paths": [{"prefix": "/docs/"}]}, "allow": "anonymous"},
    {
        "name": "admin",
        "match": {"paths": [{"prefix": "/admin/"}]},
        "allow": {"roles_any": ["admin"]},
    },
    {
        "name": "reports",
        "match": {"methods": ["GET"], "paths": [{"prefix": "/reports/"}]},
        "allow": {"roles_any": ["reader", "admin"]},
    },
    {"name": "api", "match": {"paths": [{"prefix": "/api/"}]}, "allow": "authenticated"},
    {"name": "open-reads", "match": {"methods": ["GET"]}, "allow": "anonymous"},
]

QUOTA_LIMIT = 2  # per principal, a token bucket: no window edge to straddle

LIMITS = {
    "domain": DOMAIN,
    "descriptors": [
        {
            "key": "user",
            "rate_limit": {
                "unit": "hour",
                "requests_per_unit": QUOTA_LIMIT,
                "algorithm": "token_bucket",
                "name": "per-user",
            },
        }
    ],
}


def document(
    *, brute_force: bool = True, quota: bool = True, failure_mode: str = "unavailable"
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "admin": {"listen": None},
        "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": False}},
        "policy_selection": {"default": "main"},
        "policies": {"main": {"rules": RULES}},
        "rate_limit": {
            "store": "memory",
            "failure_mode": failure_mode,
            "domains": [LIMITS],
            "brute_force": {
                "enabled": brute_force,
                "max_failures": 2,
                "window": "1m",
                "lockout": "1m",
            },
        },
    }
    if quota:
        config["check_quota"] = {
            "domain": DOMAIN,
            "descriptors": [{"entries": [{"key": "user", "source": "principal"}]}],
        }
    return config


@dataclasses.dataclass
class Compiled:
    config: CompiledConfig
    store: RecordingStore
    authenticator: FakeAuthenticator


@pytest.fixture
def compile_document(tmp_path: Path) -> Iterator[Any]:
    """compile_document(document) -> Compiled: the real compiled config, over a recording
    store, with the fake authenticator in place of the real one."""
    counter = iter(range(1000))

    def build(config: dict[str, Any]) -> Compiled:
        path = write_config(tmp_path / f"authz{next(counter)}.yaml", config)
        holder = QuotaStoreHolder()
        store = RecordingStore()
        holder.store = store
        compiled = compile_config(load_config_file(path), JwksRegistry(), holder)
        authenticator = FakeAuthenticator()
        faked = dataclasses.replace(compiled, authenticator=authenticator)  # type: ignore[arg-type]
        return Compiled(faked, store, authenticator)

    yield build


@pytest.fixture
def compiled(compile_document: Any) -> Compiled:
    built: Compiled = compile_document(document())
    return built


def request(
    path: str = "/api/orders",
    credential: str | None = "reader",
    *,
    method: str = "GET",
    source: str = CLIENT,
    headers: Mapping[str, str] | None = None,
) -> RequestAttributes:
    sent = dict(headers or {})
    if credential is not None:
        sent[CREDENTIAL] = credential
    return RequestAttributes(
        method=method, host="api.example.com", path=path, headers=sent, source_address=source
    )


def evaluation(compiled: Compiled, sent: RequestAttributes) -> Evaluation:
    return Evaluation(sent, compiled.config)
