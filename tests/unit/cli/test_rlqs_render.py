"""The rate_limit_quota filters rendered from `quota_service:`, and the config checks that
keep them to what Envoy's filter can read."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import ValidationError

from authz_service.cli.rlqs_render import DENY_BODY, quota_filters
from authz_service.schema import Config


def config(descriptors: list[dict[str, Any]], **quota: Any) -> Config:
    return Config.model_validate(
        {
            "policies": {"default": {"rules": []}},
            "rate_limit": {"store": "memory"},
            "quota_service": {"domain": "gateway", "descriptors": descriptors, **quota},
        }
    )


def bucket(rendered: dict[str, Any]) -> dict[str, Any]:
    matcher = rendered["typed_config"]["bucket_matchers"]
    leaf = (
        matcher["matcher_list"]["matchers"][0]["on_match"]
        if "matcher_list" in matcher
        else (matcher["on_no_match"])
    )
    settings: dict[str, Any] = leaf["action"]["typed_config"]
    return settings


def test_identity_entries_read_the_headers_ext_authz_sets() -> None:
    (rendered,) = quota_filters(
        config(
            [
                {
                    "entries": [
                        {"key": "tier", "source": "tier"},
                        {"key": "user", "source": "principal"},
                    ]
                }
            ]
        )
    )
    builder = bucket(rendered)["bucket_id_builder"]["bucket_id_builder"]
    assert builder["tier"]["custom_value"]["typed_config"]["header_name"] == "x-user-tier"
    assert builder["user"]["custom_value"]["typed_config"]["header_name"] == "x-user-id"
    assert list(builder) == ["tier", "user"]  # descriptor order, as written


def test_the_client_address_is_the_source_ip_and_literals_are_string_values() -> None:
    descriptor = {
        "entries": [
            {"key": "method_class", "value": "write"},
            {"key": "ip", "source": "client_ip"},
        ],
        "methods": ["POST", "DELETE"],
    }
    (rendered,) = quota_filters(config([descriptor]))
    builder = bucket(rendered)["bucket_id_builder"]["bucket_id_builder"]
    assert builder["method_class"] == {"string_value": "write"}
    assert builder["ip"]["custom_value"]["typed_config"]["@type"].endswith("SourceIPInput")
    predicates = rendered["typed_config"]["bucket_matchers"]["matcher_list"]["matchers"][0][
        "predicate"
    ]["and_matcher"]["predicate"]
    method = predicates[-1]["single_predicate"]
    assert method["input"]["typed_config"]["header_name"] == ":method"
    assert method["value_match"]["safe_regex"]["regex"] == "^(POST|DELETE)$"


def test_a_bucket_of_literals_takes_every_request() -> None:
    (rendered,) = quota_filters(config([{"entries": [{"key": "endpoint", "value": "api"}]}]))
    assert "on_no_match" in rendered["typed_config"]["bucket_matchers"]


def test_denials_are_our_429_json_and_unassigned_buckets_are_blanket_rules() -> None:
    (rendered,) = quota_filters(config([{"entries": [{"key": "user", "source": "principal"}]}]))
    settings = bucket(rendered)
    deny = settings["deny_response_settings"]
    assert deny["http_status"] == {"code": 429}
    assert json.loads(base64.b64decode(deny["http_body"]["value"])) == DENY_BODY
    headers = {h["header"]["key"]: h["header"]["value"] for h in deny["response_headers_to_add"]}
    assert headers == {"content-type": "application/json", "x-authz-reason": "rate_limited"}
    # Never a token bucket here: Envoy 1.40 crashes at the first request.
    assert settings["no_assignment_behavior"] == {
        "fallback_rate_limit": {"blanket_rule": "ALLOW_ALL"}
    }
    assert "expired_assignment_behavior" not in settings


def test_when_unassigned_deny_also_denies_expired_assignments() -> None:
    descriptors = [{"entries": [{"key": "user", "source": "principal"}]}]
    (rendered,) = quota_filters(config(descriptors, when_unassigned="deny"))
    settings = bucket(rendered)
    assert settings["no_assignment_behavior"]["fallback_rate_limit"]["blanket_rule"] == "DENY_ALL"
    expired = settings["expired_assignment_behavior"]
    assert expired["fallback_rate_limit"] == {"blanket_rule": "DENY_ALL"}


def test_two_descriptors_with_the_same_keys_get_two_filter_names() -> None:
    ip = {"key": "remote_address", "source": "client_ip"}
    names = [
        f["name"]
        for f in quota_filters(config([{"entries": [ip]}, {"entries": [ip], "methods": ["POST"]}]))
    ]
    assert len(set(names)) == 2


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"key": "path", "source": "path"}, "cannot read the request path"),
        ({"key": "policy", "context": "policy"}, "cannot read a context_extensions entry"),
    ],
)
def test_sources_envoys_filter_cannot_read_are_refused(entry: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config([{"entries": [entry]}])


def test_an_identity_source_without_its_identity_header_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"identity_headers\.tier"):
        Config.model_validate(
            {
                "policies": {"default": {"rules": []}},
                "rate_limit": {"store": "memory"},
                "identity_headers": {"tier": None},
                "quota_service": {
                    "domain": "gateway",
                    "descriptors": [{"entries": [{"key": "tier", "source": "tier"}]}],
                },
            }
        )


@pytest.mark.parametrize("ttl", ["5s", "7.5s", "2d"])
def test_the_assignment_ttl_is_whole_seconds_longer_than_a_report(ttl: str) -> None:
    with pytest.raises(ValidationError, match="whole seconds"):
        config([{"entries": [{"key": "user", "source": "principal"}]}], assignment_ttl=ttl)


def test_quota_service_needs_the_limits_of_a_rate_limit_section() -> None:
    with pytest.raises(ValidationError, match="needs a rate_limit section"):
        Config.model_validate(
            {
                "policies": {"default": {"rules": []}},
                "quota_service": {
                    "domain": "gateway",
                    "descriptors": [{"entries": [{"key": "user", "source": "principal"}]}],
                },
            }
        )
