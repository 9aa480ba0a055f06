"""What a `when:` condition costs per request, as ratios measured side by side in one run.

    .venv/bin/python -m benchmarks.bench_conditions [--seconds 1.0] [--rounds 3]

Rows, interleaved round by round (A, B, C, D, then again) so a shared machine's load falls
on all alike; each reports CPU µs per call from /proc/self/stat (user + system) and the
median of its rounds:

- `check_plain`, `check_when`: the whole pipeline (`CheckService.check`, JWT verified from
  the token cache, RBAC, identity) for a request whose deciding rule has no condition / the
  same rule with `when: identity.claims.tenant == request.segments[1]`.
- `rbac_plain`, `rbac_when`: RBAC alone (`PolicySet.authorize`) on the same two policies.
- `cel_rust`, `cel_python`: one evaluation of the same expression by the CEL library we use
  (`common-expression-language`) and by `cel-python` (the `bench` extra).

Writes benchmarks/results/conditions.json with /proc/loadavg before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cel

from authz_service.authz.conditions import variables
from authz_service.authz.rbac import PolicySet
from authz_service.config.loader import load_config_file
from authz_service.decisions import AuthMethod, Identity, RequestAttributes
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.services.check import CheckService
from authz_service.services.compiled_config import QuotaStoreHolder, compile_config
from authz_service.services.policy_tests import OfflineRegistry, TestKey, mint_token
from benchmarks.procstat import cpu_seconds
from tests.support.authz_config import config_from, write_config

RESULTS = Path(__file__).parent / "results" / "conditions.json"
EXPRESSION = "identity.claims.tenant == request.segments[1]"
ISSUER = "https://idp.bench.local"


def _policy(with_condition: bool) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": "own-tenant",
        "match": {"paths": [{"prefix": "/tenants/"}]},
        "allow": "authenticated",
    }
    if with_condition:
        rule["when"] = EXPRESSION
    return {"default": {"rules": [rule]}}


def _config(with_condition: bool) -> dict[str, Any]:
    return {
        "jwt_providers": [
            {
                "name": "bench",
                "issuer": ISSUER,
                "audiences": ["bench"],
                "jwks_uri": "http://127.0.0.1:9/jwks.json",  # never fetched: offline keys
            }
        ],
        "telemetry": {"audit": {"enabled": False}, "metrics": {"listen": None}},
        "policies": _policy(with_condition),
    }


def _cpu_per_call(call: Callable[[], object], seconds: float) -> float:
    """CPU µs per call over about `seconds` of wall time."""
    me = [os.getpid()]
    calls, started = 0, time.monotonic()
    cpu_before = cpu_seconds(me)
    while time.monotonic() - started < seconds:
        for _ in range(200):
            call()
        calls += 200
    return (cpu_seconds(me) - cpu_before) / calls * 1e6


def _check_call(
    with_condition: bool, workdir: Path, loop: asyncio.AbstractEventLoop
) -> Callable[[], object]:
    path = write_config(workdir / f"bench-{with_condition}.yaml", _config(with_condition))
    loaded = load_config_file(path)
    provider = loaded.config.jwt_providers[0]
    key = TestKey(provider.algorithms[0])
    stores = QuotaStoreHolder()
    stores.store = MemoryStore("bench:", 1000)
    compiled = compile_config(loaded, OfflineRegistry({provider.name: key}), stores)
    service = CheckService(lambda: compiled)
    token = mint_token(provider, key, {"sub": "alice", "tenant": "acme"})
    request = RequestAttributes(
        method="GET",
        host="api.local",
        path="/tenants/acme/orders",
        headers={"authorization": f"Bearer {token}"},
    )
    decided = loop.run_until_complete(service.check(request)).decision
    assert decided.allowed, decided
    return lambda: loop.run_until_complete(service.check(request))


def _rbac_call(with_condition: bool) -> Callable[[], object]:
    config = config_from({"policies": _policy(with_condition)})
    policies = PolicySet(config.policies, config.policy_selection)
    identity = Identity(
        principal="alice", method=AuthMethod.JWT, verified_claims={"tenant": "acme"}
    )
    request = RequestAttributes(method="GET", host="api.local", path="/tenants/acme/orders")
    assert policies.authorize(request, identity).allowed
    return lambda: policies.authorize(request, identity)


def _cel_calls() -> dict[str, Callable[[], object]]:
    import celpy

    identity = Identity(principal="a", method=AuthMethod.JWT, verified_claims={"tenant": "acme"})
    seen = variables(RequestAttributes(method="GET", host="h", path="/tenants/acme/x"), identity)
    rust = cel.compile(EXPRESSION)
    environment = celpy.Environment()
    program = environment.program(environment.compile(EXPRESSION))
    assert rust.execute(seen) is True

    def python_call() -> object:
        # cel-python needs its own value types: converting the inputs is part of each call.
        return program.evaluate({name: celpy.json_to_cel(value) for name, value in seen.items()})

    assert bool(python_call())
    return {"cel_rust": lambda: rust.execute(seen), "cel_python": python_call}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="per row and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    loadavg_before = Path("/proc/loadavg").read_text().strip()
    loop = asyncio.new_event_loop()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-conditions-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Callable[[], object]] = {
        "check_plain": _check_call(False, workdir, loop),
        "check_when": _check_call(True, workdir, loop),
        "rbac_plain": _rbac_call(False),
        "rbac_when": _rbac_call(True),
        **_cel_calls(),
    }
    rounds: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, call in rows.items():
            rounds[name].append(_cpu_per_call(call, args.seconds))
    loop.close()
    median = {name: statistics.median(values) for name, values in rounds.items()}
    result = {
        "loadavg_before": loadavg_before,
        "loadavg_after": Path("/proc/loadavg").read_text().strip(),
        "cpu_us_per_call": {name: round(value, 2) for name, value in median.items()},
        "rounds": {name: [round(v, 2) for v in values] for name, values in rounds.items()},
        "ratios": {
            "check_when / check_plain": round(median["check_when"] / median["check_plain"], 3),
            "rbac_when / rbac_plain": round(median["rbac_when"] / median["rbac_plain"], 3),
            "cel_python / cel_rust": round(median["cel_python"] / median["cel_rust"], 1),
        },
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in median.items():
        print(f"{name:<12} {value:9.2f} µs CPU per call  rounds {rounds[name]}")
    for name, ratio in result["ratios"].items():
        print(f"{name:<26} {ratio}")
    print(f"loadavg before {loadavg_before} / after {result['loadavg_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
