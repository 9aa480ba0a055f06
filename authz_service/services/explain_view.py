"""Explain's lockout and quota parts as plain data.

The admin API's explain answers from these views, and `authz-service explain` prints them
(cli/explain_output.py), so that both CLIs print the same thing the same way.
"""

from __future__ import annotations

from typing import Any

from authz_service.ratelimit.results import LockoutState
from authz_service.services.explanation import QuotaPreview

View = dict[str, Any]


def lockout_view(lockout: LockoutState | None) -> View | None:
    if lockout is None:
        return None
    return {
        "locked": lockout.locked,
        "retry_after_seconds": lockout.retry_after,
        "failures_left": lockout.failures_left,
    }


def quota_view(preview: QuotaPreview | None) -> View | None:
    if preview is None:
        return None
    if preview.result is None:
        return {"domain": preview.domain, "store_unavailable": True, "descriptors": []}
    descriptors = []
    for entries, status in zip(preview.descriptors, preview.result.statuses, strict=True):
        limit = status.current_limit
        descriptors.append(
            {
                "entries": [{"key": key, "value": value} for key, value in entries],
                "code": status.code.name,
                "requests_per_unit": limit.requests_per_unit if limit else 0,
                "unit": limit.unit if limit else "",
                "limit_name": limit.name if limit else "",
                "remaining": status.limit_remaining,
                "reset_in_seconds": status.duration_until_reset,
            }
        )
    return {"domain": preview.domain, "store_unavailable": False, "descriptors": descriptors}
