"""The rate-limit rules and requests the limiter-level scenarios share."""

from __future__ import annotations

from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.results import Code, Descriptor, RateLimitRequestData
from authz_service.ratelimit.rules import RateLimitRules, compile_rules, parse_domain_document
from authz_service.ratelimit.store import QuotaStore

RULES = """
domain: api
descriptors:
  - key: client_ip
    rate_limit: {unit: minute, requests_per_unit: 3}
  - key: user
    rate_limits:
      - {unit: second, requests_per_unit: 2, name: user_per_second}
      - {unit: day, requests_per_unit: 5, name: user_per_day}
  - key: shadowed
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: tier
    value: free
    rate_limit: {unit: minute, requests_per_unit: 1, name: free}
  - key: upload
    rate_limit: {unit: minute, requests_per_unit: 3, charge_rejected: false}
  - key: sliding
    rate_limit: {unit: minute, requests_per_unit: 4, algorithm: sliding_window}
  - key: bucket
    rate_limit: {unit: minute, requests_per_unit: 3, algorithm: token_bucket}
  - key: gcra
    rate_limit: {unit: minute, requests_per_unit: 3, algorithm: gcra}
  - key: burst_fixed_window
    rate_limit: {unit: minute, requests_per_unit: 25}
  - key: burst_sliding_window
    rate_limit: {unit: minute, requests_per_unit: 25, algorithm: sliding_window}
  - key: burst_token_bucket
    rate_limit: {unit: minute, requests_per_unit: 25, algorithm: token_bucket}
"""

NOW = 1_700_000_020.0  # 40 s into a minute
MINUTE = 1_700_000_040.0  # the start of the next minute


def compiled_rules() -> RateLimitRules:
    return compile_rules([parse_domain_document(RULES, "api.yaml")])


def limiter(store: QuotaStore, **options: object) -> RateLimiter:
    return RateLimiter(compiled_rules(), store, **options)  # type: ignore[arg-type]


def request(*descriptors: Descriptor, hits: int = 0) -> RateLimitRequestData:
    return RateLimitRequestData("api", descriptors, hits)


def one(key: str, value: str, **kwargs: object) -> Descriptor:
    return Descriptor(((key, value),), **kwargs)  # type: ignore[arg-type]


async def codes(
    rl: RateLimiter, req: RateLimitRequestData, times: int, at: float = NOW
) -> list[Code]:
    return [(await rl.should_rate_limit(req, at)).overall_code for _ in range(times)]
