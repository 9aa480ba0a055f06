"""A large policy is parsed once, by the C parser when PyYAML has it, with the GC paused."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import yaml

from authz_service.config import yaml_source
from authz_service.config.collector import collector_paused
from authz_service.config.loader import load_config_file


def test_the_c_parser_is_used_when_pyyaml_has_libyaml() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML has no libyaml")
    assert yaml_source._Loader is yaml.CSafeLoader


def test_a_config_file_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "authz.yaml"
    rules = [{"name": f"r{i}", "allow": "anonymous"} for i in range(50)]
    path.write_text(yaml.safe_dump({"policies": {"default": {"rules": rules}}}))
    parses: list[str] = []
    collector_states: list[bool] = []

    class CountingLoader(yaml_source._Loader):  # type: ignore[name-defined,misc]
        def __init__(self, stream: Any) -> None:
            parses.append("parse")
            collector_states.append(gc.isenabled())
            super().__init__(stream)

    monkeypatch.setattr(yaml_source, "_Loader", CountingLoader)

    loaded = load_config_file(path)

    assert len(loaded.config.policies["default"].rules) == 50
    assert parses == ["parse"]
    assert collector_states == [False]


def test_the_collector_pause_nests_and_restores_the_previous_state() -> None:
    assert gc.isenabled()
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
