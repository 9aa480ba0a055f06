"""Lines for the quota service (RLQS) part of `explain` and `admin quota`:

quota service (RLQS) [user=alice]: per-user 20 per 1s, shared by 2 Envoys
  demand 61.2/s (allowed 98, denied 208 in their last reports)
  vm:1234:ab12cd#1 from ipv4:127.0.0.1:51234: share 9.7/1s, demand 30.1/s, 49 allowed, 102 denied
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from authz_service.decisions import Decision, RequestAttributes
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.quota_service_view import request_buckets, usage_views
from authz_service.services.quota_wiring import build_quota_service

View = dict[str, Any]


async def quota_service_buckets(
    compiled: CompiledConfig, request: RequestAttributes, decision: Decision
) -> list[View]:
    """`authz-service explain`: the request's quota service buckets, from the usage store the
    config names (an allowed request only: a refused one never reaches Envoy's filters)."""
    config = compiled.loaded.config
    if config.quota_service is None or not decision.allowed:
        return []
    service = build_quota_service(lambda: compiled, config)
    try:
        return usage_views(await request_buckets(service, compiled, request, decision.identity))
    finally:
        await service.close()


def _share(value: float, window: float) -> str:
    return "none yet" if value < 0 else f"{value:.1f}/{window:g}s"


def _demand(value: float) -> str:
    return "unknown (first report)" if value < 0 else f"{value:.1f}/s"


def quota_service_lines(views: Iterable[View]) -> list[str]:
    lines = []
    for view in views:
        bucket = " ".join(f"{e['key']}={e['value']}" for e in view["entries"])
        window = view["window_seconds"]
        envoys = view["envoys"]
        head = (
            f"quota service (RLQS) [{bucket}]: {view['limit_name'] or '(unnamed)'} "
            f"{view['requests_per_unit']} per {window:g}s"
        )
        if view["enforced"] != "share":
            head += f" ({view['enforced']}: not enforced as shares)"
        head += f", shared by {len(envoys)} Envoy{'s' * (len(envoys) != 1)}"
        if view["store_unavailable"]:
            head += " (usage store unavailable: this replica's Envoys only)"
        lines.append(head)
        lines.append(
            f"  demand {view['demand_per_second']:.1f}/s (allowed {view['allowed']}, "
            f"denied {view['denied']} in their last reports)"
        )
        for envoy in envoys:
            lines.append(
                f"  {envoy['envoy']} from {envoy['peer'] or '?'}: share "
                f"{_share(envoy['share'], window)}, demand {_demand(envoy['demand_per_second'])}, "
                f"{envoy['allowed']} allowed, {envoy['denied']} denied, "
                f"expires in {envoy['expires_in_seconds']:.0f}s"
            )
    return lines
