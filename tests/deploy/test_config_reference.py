"""docs/configuration.md and docs/config.schema.json are generated from the config model and
kept current; the schema accepts every config we ship and rejects what the loader rejects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from authz_service.schema import Config
from tests.support import REPO_ROOT
from tools.config_reference import REFERENCE, SCHEMA, main, rows

SHIPPED_CONFIGS = [
    REPO_ROOT / "config" / "local.yaml",
    REPO_ROOT / "compose" / "authz" / "config.yaml",
    REPO_ROOT / "deploy" / "kubernetes" / "authz-service" / "config.yaml",
]


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_reference_and_schema_are_current() -> None:
    assert main(["--check"]) == 0, "run: python -m tools.config_reference"


def test_every_top_level_setting_is_in_the_reference() -> None:
    text = REFERENCE.read_text()
    for name in Config.model_fields:
        assert f"| `{name}` |" in text, name


def test_listeners_need_a_restart_and_policies_reload() -> None:
    applied = {row.path: row.applied for row in rows()}

    assert applied["server.listen"] == "restart"
    assert applied["admin.listen"] == "restart"
    assert applied["rate_limit.redis.url"] == "restart"
    assert applied["policies.<name>.rules[].allow"] == "reload"
    assert applied["jwt_providers[].issuer"] == "reload"
    assert applied["server.drain_delay_s"] == "reload"


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_shipped_config_satisfies_the_json_schema(path: Path, validator: Any) -> None:
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]

    assert errors == []


def test_the_json_schema_rejects_an_unknown_key_as_the_loader_does(validator: Any) -> None:
    config = yaml.safe_load(SHIPPED_CONFIGS[0].read_text())
    config["server"]["lisen"] = "127.0.0.1:9001"

    messages = [error.message for error in validator.iter_errors(config)]
    assert any("'lisen' was unexpected" in message for message in messages), messages
