"""API Gateway REQUEST authorizer events (payload 1.0 and 2.0) -> RequestAttributes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from authz_service.lambda_authorizer.events import (
    UnreadableEvent,
    authorizer_request,
    parse_method_arn,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return event


def test_rest_v1_event_becomes_request_attributes() -> None:
    request = authorizer_request(fixture("rest_request_v1.json"), {"policy": "public"})
    attributes = request.attributes
    assert request.version == "1.0"
    assert request.resource_arn.endswith("/prod/GET/api/orders")
    assert attributes.method == "GET"
    assert attributes.host == "abcdef123.execute-api.us-east-1.amazonaws.com"
    assert attributes.path == "/api/orders?page=2&tag=a&tag=b"
    assert attributes.source_address == "198.51.100.23"
    assert attributes.request_id == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert attributes.context == {"policy": "public"}
    assert attributes.headers["user-agent"] == "curl/8.5.0"


def test_rest_v1_headers_come_from_multi_value_headers_joined() -> None:
    event = fixture("rest_request_v1.json")
    event["multiValueHeaders"]["Cookie"] = ["a=1", "b=2"]
    event["multiValueHeaders"]["X-Tag"] = ["1", "2"]
    headers = authorizer_request(event).attributes.headers
    assert headers["cookie"] == "a=1; b=2"
    assert headers["x-tag"] == "1, 2"


def test_rest_v1_without_multi_value_fields_uses_single_value_ones() -> None:
    event = fixture("rest_request_v1.json")
    del event["multiValueHeaders"], event["multiValueQueryStringParameters"]
    attributes = authorizer_request(event).attributes
    assert attributes.headers["accept"] == "application/json"
    assert attributes.path == "/api/orders?page=2&tag=b"


def test_http_api_v2_event_becomes_request_attributes() -> None:
    request = authorizer_request(fixture("http_api_request_v2.json"))
    attributes = request.attributes
    assert request.version == "2.0"
    assert request.resource_arn.endswith("/prod/GET/api/orders")
    assert attributes.method == "GET"
    # The named stage is not part of the path policies see.
    assert attributes.path == "/api/orders?page=2&tag=a&tag=b"
    assert attributes.source_address == "198.51.100.23"
    assert attributes.request_id == "JKJaXmPLvHcESHA="
    # Payload 2.0 sends cookies apart from the headers.
    assert attributes.headers["cookie"] == "theme=dark; session=abc"


def test_http_api_v2_default_stage_keeps_the_path() -> None:
    event = fixture("http_api_request_v2.json")
    event["requestContext"]["stage"] = "$default"
    event["rawPath"] = "/prod/api/orders"
    assert authorizer_request(event).attributes.path.startswith("/prod/api/orders")


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("rest_request_v1.json", lambda e: e.update(type="TOKEN"), "only REQUEST"),
        ("rest_request_v1.json", lambda e: e.pop("httpMethod"), "httpMethod"),
        ("rest_request_v1.json", lambda e: e.pop("methodArn"), "methodArn"),
        ("http_api_request_v2.json", lambda e: e.pop("routeArn"), "routeArn"),
        (
            "http_api_request_v2.json",
            lambda e: e["requestContext"]["http"].pop("method"),
            "method",
        ),
    ],
)
def test_incomplete_events_are_unreadable(name: str, edit: Any, message: str) -> None:
    event = copy.deepcopy(fixture(name))
    edit(event)
    with pytest.raises(UnreadableEvent, match=message):
        authorizer_request(event)


def test_method_arn_is_split_into_its_parts() -> None:
    arn = parse_method_arn("arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/POST/api/x/y")
    assert (arn.api_id, arn.stage, arn.method, arn.resource) == (
        "abc123",
        "prod",
        "POST",
        "api/x/y",
    )
    assert arn.prefix == "arn:aws:execute-api:eu-west-1:123456789012"


@pytest.mark.parametrize(
    "arn", ["", "arn:aws:s3:::bucket", "arn:aws:execute-api:r:1:abc123", "not an arn"]
)
def test_bad_method_arns_are_refused(arn: str) -> None:
    with pytest.raises(UnreadableEvent):
        parse_method_arn(arn)
