"""Explain's lockout and quota views (services/explain_view.py) as the lines both CLIs print.

`authz-service explain` builds the views from the decision core and `authz-service admin
explain` from the admin API's response, so the two print the same thing the same way.
"""

from __future__ import annotations

from authz_service.services.explain_view import View


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
