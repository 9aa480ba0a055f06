"""check-rlqs: each sharp edge of Envoy 1.40's rate_limit_quota filter that `envoy --mode
validate` lets through is reported, and buckets are checked against the limits."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from authz_service.cli.rlqs_check import RlqsFinding, check_filters, find_filters
from authz_service.cli.rlqs_render import quota_filters
from authz_service.ratelimit.rules import RateLimitRules, compile_rules, parse_domain_document
from authz_service.schema import Config

LIMITS = """
domain: gateway
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 60}
  - key: tier
    value: gold
    descriptors:
      - {key: user, rate_limit: {unit: minute, requests_per_unit: 600}}
  - key: api
    rate_limits:
      - {unit: second, requests_per_unit: 10, name: per-second}
      - {unit: day, requests_per_unit: 1000, name: per-day}
"""


def config(descriptors: list[dict[str, Any]]) -> Config:
    return Config.model_validate(
        {
            "policies": {"default": {"rules": []}},
            "rate_limit": {"store": "memory"},
            "quota_service": {"domain": "gateway", "descriptors": descriptors},
        }
    )


@pytest.fixture
def limits() -> RateLimitRules:
    return compile_rules([parse_domain_document(LIMITS, "limits.yaml")])


def bootstrap(filters: list[dict[str, Any]]) -> dict[str, Any]:
    manager = {"@type": "...HttpConnectionManager", "http_filters": filters}
    return {
        "static_resources": {
            "listeners": [
                {"name": "public", "filter_chains": [{"filters": [{"typed_config": manager}]}]}
            ]
        }
    }


USER = [{"entries": [{"key": "user", "source": "principal"}]}]


def findings(filters: list[dict[str, Any]], limits: RateLimitRules) -> list[RlqsFinding]:
    return check_filters(list(find_filters(bootstrap(filters))), limits, "gateway")


def settings_of(rendered: dict[str, Any]) -> dict[str, Any]:
    matchers = rendered["typed_config"]["bucket_matchers"]["matcher_list"]["matchers"]
    typed_config: dict[str, Any] = matchers[0]["on_match"]["action"]["typed_config"]
    return typed_config


def one(messages: list[RlqsFinding], severity: str, text: str) -> None:
    matching = [f for f in messages if f.severity == severity and text in f.message]
    assert len(matching) == 1, messages


def test_the_rendered_filters_are_clean(limits: RateLimitRules) -> None:
    rendered = quota_filters(config(USER))
    assert findings(rendered, limits) == []


def test_a_token_bucket_before_any_assignment_is_an_error(limits: RateLimitRules) -> None:
    rendered = quota_filters(config(USER))
    settings_of(rendered[0])["no_assignment_behavior"] = {
        "fallback_rate_limit": {"token_bucket": {"max_tokens": 1, "fill_interval": "1s"}}
    }
    one(findings(rendered, limits), "error", "crashes Envoy 1.40")


def test_requests_per_time_unit_and_reuse_last_assignment_are_errors(
    limits: RateLimitRules,
) -> None:
    rendered = quota_filters(config(USER))
    settings = settings_of(rendered[0])
    settings["no_assignment_behavior"] = {
        "fallback_rate_limit": {"requests_per_time_unit": {"requests_per_time_unit": 5}}
    }
    settings["expired_assignment_behavior"] = {"reuse_last_assignment": {}}
    found = findings(rendered, limits)
    one(found, "error", "requests_per_time_unit is ignored")
    one(found, "error", "reuse_last_assignment is ignored")


def test_a_sub_second_fill_interval_is_an_error(limits: RateLimitRules) -> None:
    rendered = quota_filters(config(USER))
    settings_of(rendered[0])["expired_assignment_behavior"] = {
        "fallback_rate_limit": {"token_bucket": {"max_tokens": 5, "fill_interval": "0.5s"}}
    }
    one(findings(rendered, limits), "error", "under a second means no limit")


def test_a_reporting_interval_envoy_ignores_is_a_warning(limits: RateLimitRules) -> None:
    rendered = quota_filters(config(USER))
    settings_of(rendered[0])["reporting_interval"] = "1s"
    one(findings(rendered, limits), "warning", "reports every 5 s")


def test_a_bucket_entry_from_dynamic_metadata_is_an_error(limits: RateLimitRules) -> None:
    rendered = quota_filters(config(USER))
    builder = settings_of(rendered[0])["bucket_id_builder"]["bucket_id_builder"]
    builder["user"]["custom_value"]["typed_config"] = {
        "@type": "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3."
        "DynamicMetadataInput",
        "filter": "envoy.filters.http.ext_authz",
    }
    one(findings(rendered, limits), "error", "reads dynamic metadata")


def test_a_bucket_no_limit_covers_is_an_error(limits: RateLimitRules) -> None:
    rendered = quota_filters(config([{"entries": [{"key": "country", "header": "x-country"}]}]))
    one(findings(rendered, limits), "error", "matches no limit")


def test_a_bucket_limited_only_for_some_values_is_a_warning(limits: RateLimitRules) -> None:
    tier_user = [{"entries": [{"key": "tier", "source": "tier"}, {"key": "user", "value": "x"}]}]
    one(findings(quota_filters(config(tier_user)), limits), "warning", "only for these values")


def test_several_limits_on_one_bucket_is_a_warning(limits: RateLimitRules) -> None:
    rendered = quota_filters(config([{"entries": [{"key": "api", "header": "x-api"}]}]))
    one(findings(rendered, limits), "warning", "lowest rate")


def test_another_domain_than_the_quota_services_is_a_warning(limits: RateLimitRules) -> None:
    rendered = quota_filters(config(USER))
    other = copy.deepcopy(rendered)
    other[0]["typed_config"]["domain"] = "elsewhere"
    found = findings(other, limits)
    one(found, "warning", "is not quota_service.domain")
    one(found, "error", "not in the rate-limit config")


def test_no_quota_filter_at_all_is_an_error(limits: RateLimitRules) -> None:
    one(findings([], limits), "error", "no rate_limit_quota filter")
