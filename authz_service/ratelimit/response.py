"""What a client sees when limited: X-RateLimit headers and a JSON body.

Shared by the RateLimitService (raw_body) and ext_authz Check (429 denied response), so both
paths answer alike. Header format follows draft-ietf-httpapi-ratelimit-headers-03, as Envoy's
`enable_x_ratelimit_headers: DRAFT_VERSION_03` writes it.
"""

from __future__ import annotations

import json
import math

from authz_service.ratelimit.results import RateLimitResult
from authz_service.schema import UNIT_SECONDS

JSON_CONTENT_TYPE = "application/json"


def reset_seconds(duration: float) -> int:
    # Round up: a client told "0" would retry while still limited.
    return max(0, math.ceil(duration - 1e-9))


def rate_limit_headers(result: RateLimitResult) -> dict[str, str]:
    status = result.tightest
    if status is None or status.current_limit is None:
        return {}
    limit = status.current_limit
    window = limit.window_s if limit.window_s is not None else UNIT_SECONDS[limit.unit]
    policy = f"{limit.requests_per_unit};w={max(1, round(window))}"
    if limit.name:
        policy += f';name="{limit.name}"'
    return {
        "x-ratelimit-limit": f"{limit.requests_per_unit}, {policy}",
        "x-ratelimit-remaining": str(status.limit_remaining),
        "x-ratelimit-reset": str(reset_seconds(status.duration_until_reset)),
    }


def over_limit_body(result: RateLimitResult) -> bytes:
    status = result.tightest
    body: dict[str, object] = {
        "error": "rate_limited",
        "reason": "rate_limited",
        "message": "too many requests",
    }
    if status is not None and status.current_limit is not None:
        body["retry_after_s"] = reset_seconds(status.duration_until_reset)
        if status.current_limit.name:
            body["limit"] = status.current_limit.name
    return json.dumps(body, separators=(",", ":")).encode()
