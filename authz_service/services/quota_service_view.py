"""The quota service (RLQS) in explain and admin quota: a bucket's global usage and each
Envoy's share, as plain data (the admin API translates it to protobuf, the CLIs print it).

For explain, the request's buckets are built from `quota_service.descriptors` the way Envoy's
filters build them (identity entries from the identity Check just established, as the
identity headers carry them to Envoy), and only for a request Check allows: a refused one
never reaches Envoy's quota filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from authz_service.decisions import Identity, RequestAttributes
from authz_service.schema import CheckQuota
from authz_service.services.check_quota import CheckQuotaDescriptors
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.quota_service import QuotaShareService, QuotaUsageView

View = dict[str, Any]


async def request_buckets(
    service: QuotaShareService,
    compiled: CompiledConfig,
    request: RequestAttributes,
    identity: Identity | None,
) -> list[QuotaUsageView]:
    """The limited buckets this request falls in, each as the quota service sees it now."""
    settings = compiled.loaded.config.quota_service
    if settings is None:
        return []
    builder = CheckQuotaDescriptors(
        CheckQuota(domain=settings.domain, descriptors=settings.descriptors)
    )
    views = []
    for entries in builder.descriptors(request, identity):
        view = await service.view(settings.domain, entries)
        if view is not None:
            views.append(view)
    return views


def usage_view(view: QuotaUsageView) -> View:
    bucket, limit = view.bucket, view.bucket.limit
    return {
        "entries": [{"key": key, "value": value} for key, value in bucket.entries],
        "limit_name": limit.name if limit else "",
        "requests_per_unit": limit.requests_per_unit if limit else 0,
        "window_seconds": limit.window_s if limit else 0.0,
        "enforced": bucket.why.value,
        "demand_per_second": view.demand,
        "allowed": view.allowed,
        "denied": view.denied,
        "store_unavailable": view.local_only,
        "envoys": [
            {
                "envoy": usage.envoy,
                "peer": usage.peer,
                "demand_per_second": usage.demand,
                "share": usage.share,
                "allowed": usage.allowed,
                "denied": usage.denied,
                "expires_in_seconds": max(0.0, usage.expires_at - view.now),
            }
            for usage in view.envoys
        ],
    }


def usage_views(views: Sequence[QuotaUsageView]) -> list[View]:
    return [usage_view(view) for view in views]
