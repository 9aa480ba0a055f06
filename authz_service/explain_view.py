"""Explain's lockout and quota parts as plain data, and as the lines both CLIs print.

`authz-service explain` builds these views from the decision core and `authz-service admin
explain` from the admin API's response, so the two print the same thing the same way.
"""

from __future__ import annotations

from typing import Any

from authz_service.ratelimit import LockoutState
from authz_service.services.check import QuotaPreview

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


def lockout_lines(view: View | None) -> list[str]:
    if view is None:
        return []
    if view["locked"]:
        return [f"lockout:    LOCKED for {view['retry_after_seconds']:.0f}s more"]
    return [f"lockout:    not locked ({view['failures_left']} failed attempts left)"]


def quota_lines(view: View | None) -> list[str]:
    if view is None:
        return []
    lines = [f"quota:      domain {view['domain']} (the next request; nothing charged)"]
    if view["store_unavailable"]:
        lines.append("  store unavailable: Check answers per rate_limit.failure_mode")
    for row in view["descriptors"]:
        entries = ", ".join(f"{e['key']}={e['value']}" for e in row["entries"])
        if not row["requests_per_unit"]:
            lines.append(f"  {entries}: no limit")
            continue
        name = f" ({row['limit_name']})" if row["limit_name"] else ""
        lines.append(
            f"  {entries}: {row['code']}, {row['remaining']} of "
            f"{row['requests_per_unit']}/{row['unit']}{name} left, "
            f"resets in {row['reset_in_seconds']:.1f}s"
        )
    return lines
