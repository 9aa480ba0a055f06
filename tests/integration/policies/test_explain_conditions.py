"""`authz-service explain` shows each `when:` condition's value and the shadow verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authz_service.cli.main import main

CONFIG = """\
policies:
  default:
    rules:
      - name: admins-soon
        mode: shadow
        allow: { roles_any: [admin] }
      - name: reads
        allow: anonymous
        when: request.method == "GET"
"""


def test_explain_shows_conditions_and_the_shadow_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(CONFIG)

    assert main(["explain", "--config", str(path), "--path", "/x", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)

    assert shown["decision"] == "allow" and shown["rule"] == "reads"
    assert shown["conditions"] == [
        {"rule": "reads", "when": 'request.method == "GET"', "value": "true"}
    ]
    assert shown["shadow"]["decision"] == "unauthenticated"
    assert shown["shadow"]["rule"] == "admins-soon"


def test_a_false_condition_is_why_the_rule_was_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(CONFIG)

    main(["explain", "--config", str(path), "--path", "/x", "--method", "POST"])
    text = capsys.readouterr().out

    assert 'reads: skipped: when: request.method == "GET" is false' in text
    assert "decision:   FORBIDDEN (no_matching_rule)" in text
