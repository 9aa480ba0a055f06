"""The worked examples of docs/configuration.md are valid: each config block compiles (its
`when:` conditions included), the policy test block is a valid test file."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from authz_service.authz.rbac import PolicySet
from authz_service.schema.policy_tests import PolicyTestFile
from tests.support.authz_config import config_from, open_policy
from tools.config_reference import EXAMPLES

BLOCKS = [
    (title, yaml.safe_load(block))
    for title, text in EXAMPLES
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S)
]


@pytest.mark.parametrize(("title", "document"), BLOCKS, ids=[title for title, _ in BLOCKS])
def test_each_example_block_is_valid(title: str, document: dict[str, Any]) -> None:
    if "tests" in document:
        assert PolicyTestFile.model_validate(document).tests
        return
    policies = {**open_policy(), **document.get("policies", {})}
    config = config_from({**document, "policies": policies})
    compiled = PolicySet(config.policies, config.policy_selection)
    assert compiled.compiled, title


def test_every_example_with_yaml_is_checked() -> None:
    assert len(BLOCKS) == 4
