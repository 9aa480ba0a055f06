"""Per-request CPU cost of the sender-constraint checks, side by side in one run.

    python -m benchmarks.credentials [--calls 2000]

CPU microseconds per call from /proc (this process's user + system time), for: verifying a
bearer JWT (RS256, what a token-cache miss costs), verifying a DPoP proof (ES256: one more
signature per request, never cached), the proof plus its `jti` recorded in the memory store,
the DPoP server-nonce check (one HMAC), the certificate-binding comparison and the step-up
rule; then a request's whole token authentication for a JWT in the token cache and an opaque
token (RFC 7662) with its introspection answer cached and uncached
(benchmarks/introspection_rows.py: an HTTP call per request to a loopback endpoint in a child
process, whose own CPU is printed apart). Ratios are against the bearer JWT verification.
Prints /proc/loadavg before and after: a loaded machine skews all rows alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import jwt

from authz_service.authn.dpop import DpopVerifier
from authz_service.authn.dpop_nonce import DpopNonces
from authz_service.decisions import (
    AuthMethod,
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.schema import DpopSettings, StepUp
from authz_service.services.pipeline import Evaluation
from authz_service.services.stages.cert_binding import CertificateBindingStage
from authz_service.services.stages.step_up import StepUpStage
from benchmarks.introspection_rows import EndpointCpu, endpoint_process, introspection_rows
from benchmarks.procstat import cpu_seconds
from tests.support.dpop_proofs import DpopClient
from tools.dev_idp import new_rsa_key

URL = "https://api.example/orders"
SETTINGS = DpopSettings(max_age_s=3600)


def cpu_us_per_call(work: Callable[[int], None], calls: int) -> float:
    work(min(calls, 50))  # warm up: imports, key parsing caches
    before = cpu_seconds([os.getpid()])
    work(calls)
    return (cpu_seconds([os.getpid()]) - before) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls
    with endpoint_process() as (url, pid):
        measure(calls, url, EndpointCpu(pid))


def measure(calls: int, introspection_url: str, endpoint: EndpointCpu) -> None:
    print("loadavg before:", Path("/proc/loadavg").read_text().strip())

    signer = new_rsa_key()
    now = int(time.time())
    bearer = jwt.encode(
        {"sub": "alice", "iat": now, "exp": now + 3600, "aud": "api"},
        signer.private_key,
        algorithm="RS256",
    )
    public = jwt.PyJWK(signer.public_jwk()).key

    def bearer_jwt(n: int) -> None:
        for _ in range(n):
            jwt.decode(bearer, public, algorithms=["RS256"], audience="api")

    client = DpopClient()
    verifier = DpopVerifier({"https://idp": SETTINGS}, MemoryStore("bench:"))
    proofs = [client.proof("GET", URL, bearer) for _ in range(calls + 50)]

    def dpop_verify(n: int) -> None:
        for proof in proofs[:n]:
            verifier.verify(
                proof,
                settings=SETTINGS,
                method="GET",
                url=URL,
                access_token=bearer,
                jkt=client.jkt,
                now=time.time(),
            )

    fresh = [client.proof("GET", URL, bearer) for _ in range(2 * calls + 100)]

    def dpop_verify_and_record(n: int) -> None:
        async def run() -> None:
            for _ in range(n):
                proof = verifier.verify(
                    fresh.pop(),
                    settings=SETTINGS,
                    method="GET",
                    url=URL,
                    access_token=bearer,
                    jkt=client.jkt,
                    now=time.time(),
                )
                assert await verifier.first_use(proof, SETTINGS, time.time())

        asyncio.run(run())

    bound = Identity("svc", AuthMethod.JWT, bound_x5t="x" * 43)
    request = RequestAttributes("GET", "api", "/", client_cert_thumbprint="x" * 43)
    binding = CertificateBindingStage()

    def cert_binding(n: int) -> None:
        for _ in range(n):
            evaluation = Evaluation(request, cast(Any, None))
            evaluation.authn = bound
            binding.decide(evaluation, None)

    step_up = StepUpStage({("p", "r"): (StepUp(acr_values=["mfa"], max_age_s=300), False)})
    user = Identity("alice", AuthMethod.JWT, acr="mfa", auth_time=time.time())
    allowed = Decision(Outcome.ALLOW, Reason.ALLOWED, rule="r", policy="p", identity=user)

    def step_up_rule(n: int) -> None:
        for _ in range(n):
            evaluation = Evaluation(request, cast(Any, None))
            evaluation.decision = allowed
            step_up.decide(evaluation, None)

    nonces = DpopNonces(b"bench-nonce-key-of-32-bytes-long", lifetime_s=300, issuer="i")
    nonce = nonces.current(time.time())

    def dpop_nonce_check(n: int) -> None:
        now = time.time()
        for _ in range(n):
            assert nonces.accepts(nonce, now)

    rows = [
        ("bearer JWT verify (RS256, token-cache miss)", bearer_jwt, calls),
        ("DPoP proof verify (ES256)", dpop_verify, calls),
        ("DPoP proof verify + jti recorded (memory store)", dpop_verify_and_record, calls),
        # Sub-microsecond checks: many more calls, so /proc's 10 ms ticks resolve them.
        ("DPoP server nonce check (HMAC-SHA256)", dpop_nonce_check, calls * 20),
        ("certificate binding (x5t#S256 compare)", cert_binding, calls * 200),
        ("step-up rule (acr + auth_time)", step_up_rule, calls * 200),
        *introspection_rows(introspection_url, calls, bearer, endpoint),
    ]
    results = [(name, cpu_us_per_call(work, n)) for name, work, n in rows]
    base = results[0][1]
    print(f"{'check':52} {'CPU us/call':>12} {'x bearer':>9}")
    for name, micros in results:
        # Too few calls for /proc's 10 ms ticks (a smoke run) measure 0: no ratio then.
        ratio = f"{micros / base:9.2f}" if base else f"{'n/a':>9}"
        print(f"{name:52} {micros:12.1f} {ratio}")
    print(f"introspection endpoint (child process): {endpoint.us_per_call:.1f} CPU us/call")
    print("loadavg after: ", Path("/proc/loadavg").read_text().strip())


if __name__ == "__main__":
    main()
