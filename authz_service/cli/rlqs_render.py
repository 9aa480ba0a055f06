"""The Envoy side of the quota service: `rate_limit_quota` filters built from `quota_service:`.

One filter per descriptor (Envoy puts a request in one bucket per filter), each opening its
own stream to this service. Built around what Envoy 1.40 actually does (docs/quota-service.md):

- the bucket id is built from the request: literal entries as `string_value`, the client
  address as `SourceIPInput`, headers as `HttpRequestHeaderMatchInput`; identity entries
  (principal, tier, auth_method) are read from the identity headers ext_authz sets on allow
  (overwriting any client copy), because the filter cannot read ext_authz's dynamic metadata;
- a request missing a value matches no bucket and is not limited by that filter (as Envoy's
  rate_limits actions drop a descriptor), and the methods of a descriptor are a predicate;
- before the first assignment, and once one expired, the bucket is ALLOW_ALL or DENY_ALL
  (`when_unassigned`): a token bucket there crashes Envoy 1.40 at the first request;
- the deny response is our 429 JSON body with `x-authz-reason: rate_limited`.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from authz_service.schema import Config, QuotaDescriptor, QuotaEntry, QuotaServiceSettings
from authz_service.schema.quota_service import IDENTITY_HEADER_OF

FILTER = "envoy.filters.http.rate_limit_quota"
_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rate_limit_quota.v3."
_HEADER_INPUT = "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput"
_SOURCE_IP_INPUT = (
    "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.SourceIPInput"
)
# Envoy reports every 5 s whatever this says (1.40); written so the config says the truth.
REPORTING_INTERVAL = "5s"
# A denied bucket stays denied this long after its assignment expired (then: no assignment,
# which is DENY_ALL too with when_unassigned: deny).
_EXPIRED_DENY_FOR = "3600s"
DENY_BODY = {"error": "rate_limited", "reason": "rate_limited", "message": "too many requests"}


def filter_name(descriptor: QuotaDescriptor) -> str:
    """A name per filter (a route disables one by it), from the descriptor's keys."""
    keys = ".".join(re.sub(r"[^a-z0-9_]+", "_", e.key.lower()) for e in descriptor.entries)
    return f"{FILTER}.{keys}"


def _input(entry: QuotaEntry, config: Config) -> dict[str, Any] | None:
    """The match input reading the entry's value from a request (None: a literal)."""
    if entry.value is not None:
        return None
    if entry.source == "client_ip":
        return {"name": "client_ip", "typed_config": {"@type": _SOURCE_IP_INPUT}}
    header = entry.header
    if entry.source in IDENTITY_HEADER_OF:
        header = getattr(config.identity_headers, IDENTITY_HEADER_OF[entry.source])
    elif entry.source == "method":
        header = ":method"
    elif entry.source == "host":
        header = ":authority"
    if header is None:  # path and context are refused by the schema
        raise ValueError(f"entry {entry.key!r}: Envoy's filter cannot read its source")
    return {"name": header, "typed_config": {"@type": _HEADER_INPUT, "header_name": header}}


def _present(matcher_input: dict[str, Any]) -> dict[str, Any]:
    return {
        "single_predicate": {
            "input": matcher_input,
            "value_match": {"safe_regex": {"google_re2": {}, "regex": ".+"}},
        }
    }


def _methods(methods: list[str]) -> dict[str, Any]:
    regex = "^(" + "|".join(re.escape(method) for method in methods) + ")$"
    method_input = {
        "name": ":method",
        "typed_config": {"@type": _HEADER_INPUT, "header_name": ":method"},
    }
    return {
        "single_predicate": {
            "input": method_input,
            "value_match": {"safe_regex": {"google_re2": {}, "regex": regex}},
        }
    }


def _unassigned(settings: QuotaServiceSettings) -> dict[str, Any]:
    rule = "ALLOW_ALL" if settings.when_unassigned == "allow" else "DENY_ALL"
    behaviour: dict[str, Any] = {
        "no_assignment_behavior": {"fallback_rate_limit": {"blanket_rule": rule}}
    }
    if rule == "DENY_ALL":
        behaviour["expired_assignment_behavior"] = {
            "expired_assignment_behavior_timeout": _EXPIRED_DENY_FOR,
            "fallback_rate_limit": {"blanket_rule": "DENY_ALL"},
        }
    return behaviour


def bucket_settings(descriptor: QuotaDescriptor, config: Config) -> dict[str, Any]:
    settings = config.quota_service
    assert settings is not None
    builder: dict[str, Any] = {}
    for entry in descriptor.entries:
        matcher_input = _input(entry, config)
        builder[entry.key] = (
            {"string_value": entry.value}
            if matcher_input is None
            else {"custom_value": matcher_input}
        )
    body = json.dumps(DENY_BODY, separators=(",", ":")).encode()
    return {
        "@type": _TYPE + "RateLimitQuotaBucketSettings",
        "bucket_id_builder": {"bucket_id_builder": builder},
        "reporting_interval": REPORTING_INTERVAL,
        "deny_response_settings": {
            "http_status": {"code": 429},
            # A BytesValue: base64 in Envoy's JSON/YAML.
            "http_body": {"value": base64.b64encode(body).decode()},
            "response_headers_to_add": [
                {
                    "header": {"key": "content-type", "value": "application/json"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                },
                {
                    "header": {"key": "x-authz-reason", "value": "rate_limited"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                },
            ],
        },
        **_unassigned(settings),
    }


def quota_filter(descriptor: QuotaDescriptor, config: Config, cluster: str) -> dict[str, Any]:
    """One `rate_limit_quota` http filter for one descriptor."""
    settings = config.quota_service
    assert settings is not None
    predicates = [
        _present(matcher_input)
        for entry in descriptor.entries
        if (matcher_input := _input(entry, config)) is not None
    ]
    if descriptor.methods:
        predicates.append(_methods(descriptor.methods))
    action = {"action": {"name": "bucket", "typed_config": bucket_settings(descriptor, config)}}
    if not predicates:  # literals only: every request is in the bucket
        matcher: dict[str, Any] = {"on_no_match": action}
    else:
        predicate = (
            predicates[0] if len(predicates) == 1 else {"and_matcher": {"predicate": predicates}}
        )
        matcher = {"matcher_list": {"matchers": [{"predicate": predicate, "on_match": action}]}}
    return {
        "name": filter_name(descriptor),
        "typed_config": {
            "@type": _TYPE + "RateLimitQuotaFilterConfig",
            "rlqs_server": {"envoy_grpc": {"cluster_name": cluster}},
            "domain": settings.domain,
            "bucket_matchers": matcher,
        },
    }


def quota_filters(config: Config, cluster: str = "authz_service") -> list[dict[str, Any]]:
    """The filters, in `quota_service.descriptors` order, to put after ext_authz (whose
    identity headers they read). Raises ValueError without a `quota_service:` section."""
    if config.quota_service is None:
        raise ValueError("the config has no quota_service section")
    filters = [quota_filter(d, config, cluster) for d in config.quota_service.descriptors]
    seen: dict[str, int] = {}
    for item in filters:  # two descriptors with the same keys (other methods): name both
        count = seen[item["name"]] = seen.get(item["name"], 0) + 1
        if count > 1:
            item["name"] += f".{count}"
    return filters
