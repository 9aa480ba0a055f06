"""`authz-service test`: run a config's test file through the exact pipeline, offline.

Each test's request goes through `CheckService.check` (enforce mode, every stage the config
turns on) under the config as loaded, with two things made local: JWT providers trust a key
made for this run (tokens are minted from the test's claims, no JWKS is fetched), and the
quota store is in memory (no Redis). What the upstream would receive comes from the same
`ResponsePolicy` the transports answer with.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authz_service.authn.jwks import JwksCache
from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.config.loader import (
    ConfigError,
    LoadedConfig,
    load_config_file,
    validate_document,
)
from authz_service.config.yaml_source import parse_yaml
from authz_service.decisions import Decision, RequestAttributes
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.schema import JwtProvider
from authz_service.schema.policy_tests import PolicyTest, PolicyTestFile
from authz_service.services.check import CheckService
from authz_service.services.compiled_config import CompiledConfig, QuotaStoreHolder, compile_config

TEST_KEY_ID = "authz-service-test"


def tests_file_for(config_path: Path) -> Path:
    """`local.yaml` -> `local.tests.yaml`, beside it."""
    return config_path.with_name(f"{config_path.stem}.tests{config_path.suffix}")


@dataclass(frozen=True, slots=True)
class Mismatch:
    field: str
    expected: str
    got: str


@dataclass(frozen=True, slots=True)
class TestResult:
    test: PolicyTest
    line: int | None
    decision: Decision
    mismatches: tuple[Mismatch, ...]

    @property
    def passed(self) -> bool:
        return not self.mismatches


@dataclass(slots=True)
class SuiteResult:
    config: Path
    tests_file: Path
    results: list[TestResult] = field(default_factory=list)
    # (policy, rule) of every rule in the config, and those some test's decision came from.
    rules: list[tuple[str, str]] = field(default_factory=list)
    reached: set[tuple[str, str]] = field(default_factory=set)

    @property
    def failed(self) -> list[TestResult]:
        return [result for result in self.results if not result.passed]

    @property
    def unreached(self) -> list[tuple[str, str]]:
        return [rule for rule in self.rules if rule not in self.reached]


class TestKey:
    """One signing key per algorithm family the providers accept, made for this run."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        if algorithm.startswith(("RS", "PS")):
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES384":
            self.private = ec.generate_private_key(ec.SECP384R1())
        elif algorithm == "ES512":
            self.private = ec.generate_private_key(ec.SECP521R1())
        elif algorithm == "EdDSA":
            from cryptography.hazmat.primitives.asymmetric import ed25519

            self.private = ed25519.Ed25519PrivateKey.generate()
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
        family = jwt.algorithms.get_default_algorithms()[algorithm]
        public = family.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = jwt.PyJWK({**public, "kid": TEST_KEY_ID, "alg": algorithm})


class _OfflineJwks(JwksCache):
    """A provider's key source that holds the run's test key and never fetches."""

    def __init__(self, provider: JwtProvider, key: TestKey) -> None:
        super().__init__(provider.issuer, provider.jwks)
        self._keys = {TEST_KEY_ID: key.jwk}

    def start(self) -> None:
        return None

    async def refetch_if_allowed(self) -> None:
        return None


class OfflineRegistry(JwksRegistry):
    def __init__(self, keys: Mapping[str, TestKey]) -> None:
        super().__init__()
        self._test_keys = keys

    def prepare(self, providers: Iterable[JwtProvider]) -> dict[str, JwksCache]:
        return {p.issuer: _OfflineJwks(p, self._test_keys[p.name]) for p in providers}


def load_tests(path: Path) -> tuple[PolicyTestFile, dict[Any, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    data, lines = parse_yaml(text, str(path))
    return validate_document(PolicyTestFile, data, str(path), lines), lines


def mint_token(provider: JwtProvider, key: TestKey, claims: Mapping[str, Any]) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": provider.issuer,
        "aud": provider.audiences[0],
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, key.private, key.algorithm, headers={"kid": TEST_KEY_ID})


async def run_suite(
    config_path: Path, tests_path: Path | None = None, rate_limit_dir: Path | None = None
) -> SuiteResult:
    """Load the config and its tests, run every test; ConfigError for a file that is unusable.

    `rate_limit_dir` stands in for `rate_limit.config_dir` when that names where the limits
    are mounted in production (a container path) rather than a directory here.
    """
    tests_path = tests_path or tests_file_for(config_path)
    loaded = load_config_file(config_path)
    settings = loaded.config.rate_limit
    if rate_limit_dir is not None and settings is not None:
        local = settings.model_copy(update={"config_dir": rate_limit_dir})
        loaded = replace(loaded, config=loaded.config.model_copy(update={"rate_limit": local}))
    suite, lines = load_tests(tests_path)
    providers = {p.name: p for p in loaded.config.jwt_providers}
    keys = {name: TestKey(p.algorithms[0]) for name, p in providers.items()}
    stores = QuotaStoreHolder()
    stores.store = MemoryStore("authz-test:", 100_000)
    compiled = compile_config(loaded, OfflineRegistry(keys), stores)
    service = CheckService(lambda: compiled)
    result = SuiteResult(config_path, tests_path, rules=_all_rules(loaded))
    try:
        for index, test in enumerate(suite.tests):
            request = _request(test, loaded, providers, keys, tests_path)
            decision = (await service.check(request)).decision
            result.reached.add((decision.policy, decision.rule))
            if decision.shadow is not None:
                result.reached.add((decision.shadow.policy, decision.shadow.rule))
            mismatches = tuple(_compare(test, decision, compiled, request))
            result.results.append(
                TestResult(test, lines.get(("tests", index)), decision, mismatches)
            )
    finally:
        await stores.close()
    return result


def _all_rules(loaded: LoadedConfig) -> list[tuple[str, str]]:
    return [
        (name, rule.name)
        for name, policy in loaded.config.policies.items()
        for rule in policy.rules
    ]


def _request(
    test: PolicyTest,
    loaded: LoadedConfig,
    providers: Mapping[str, JwtProvider],
    keys: Mapping[str, TestKey],
    tests_path: Path,
) -> RequestAttributes:
    spec = test.request
    headers = dict(spec.headers)
    if test.token is not None:
        name = test.token.provider or next(iter(providers), None)
        if name is None or name not in providers:
            raise ConfigError(
                f"{tests_path}: test {test.name!r}: no jwt provider {test.token.provider!r}"
            )
        token = mint_token(providers[name], keys[name], test.token.claims)
        headers["authorization"] = f"Bearer {token}"
    return RequestAttributes(
        method=spec.method.upper(),
        host=spec.host,
        path=spec.path,
        headers=headers,
        source_address=spec.source_address,
        peer_principal=spec.peer_principal,
        context=spec.context,
        request_id=f"test-{uuid.uuid4().hex[:8]}",
    )


def _compare(
    test: PolicyTest, decision: Decision, compiled: CompiledConfig, request: RequestAttributes
) -> Iterable[Mismatch]:
    expect = test.expect
    if decision.outcome.value != expect.decision:
        yield Mismatch("decision", expect.decision, decision.outcome.value)
    if expect.reason is not None and decision.reason.value != expect.reason:
        yield Mismatch("reason", expect.reason, decision.reason.value)
    if expect.rule is not None and decision.rule != expect.rule:
        yield Mismatch("rule", expect.rule, decision.rule or "(none)")
    if expect.policy is not None and decision.policy != expect.policy:
        yield Mismatch("policy", expect.policy, decision.policy or "(none)")
    if expect.shadow_decision is not None:
        got = decision.shadow.outcome.value if decision.shadow is not None else "(no shadow)"
        if got != expect.shadow_decision:
            yield Mismatch("shadow_decision", expect.shadow_decision, got)
    if expect.headers:
        upstream = _upstream_headers(compiled, decision, request)
        for name, value in expect.headers.items():
            seen = upstream.get(name)
            if seen != value:
                yield Mismatch(
                    f"header {name}",
                    "(absent)" if value is None else value,
                    "(absent)" if seen is None else seen,
                )


def _upstream_headers(
    compiled: CompiledConfig, decision: Decision, request: RequestAttributes
) -> Mapping[str, str]:
    """The request's headers as the upstream gets them on allow: removals, then what is set."""
    if not decision.allowed:
        return {}
    answer = compiled.responses.allow(decision, request)
    kept = {k: v for k, v in request.headers.items() if k not in answer.headers_to_remove}
    return {**kept, **answer.headers_to_set}
