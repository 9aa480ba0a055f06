"""Every setting is either reloadable or start-only, and a reload reports the start-only ones."""

from __future__ import annotations

from typing import Any

from authz_service.config.reloadable import (
    RELOADABLE,
    START_ONLY,
    field_paths,
    restart_required,
)
from authz_service.schema import Config
from authz_service.schema.secret_digest import secret_digest


def _covering(path: str, entries: tuple[str, ...]) -> list[str]:
    return [entry for entry in entries if path == entry or path.startswith(entry + ".")]


def test_every_setting_is_classified_exactly_once() -> None:
    paths = list(field_paths())
    # A section is classified through its fields; a leaf (or a whole section) by an entry.
    leaves = [p for p in paths if not any(other.startswith(p + ".") for other in paths)]
    unclassified = [p for p in leaves if not _covering(p, START_ONLY + RELOADABLE)]
    both = [p for p in leaves if _covering(p, START_ONLY) and _covering(p, RELOADABLE)]

    assert unclassified == [], "classify these in authz_service/config/reloadable.py"
    assert both == []


def test_every_classified_name_is_a_setting() -> None:
    paths = set(field_paths())
    assert [entry for entry in START_ONLY + RELOADABLE if entry not in paths] == []


def config(**sections: Any) -> Config:
    return Config.model_validate({"policies": {"default": {"rules": []}}, **sections})


def test_a_changed_listen_address_needs_a_restart_and_a_policy_does_not() -> None:
    running = config()
    new = config(
        server={"listen": "0.0.0.0:9001"},
        policies={"default": {"rules": [{"name": "open", "allow": "anonymous"}]}},
    )

    assert restart_required(running, new) == ["server.listen"]


def test_a_changed_token_applies_live_but_a_removed_one_waits_for_a_restart() -> None:
    running = config(admin={"token_hash": secret_digest("a")})

    assert restart_required(running, config(admin={"token_hash": secret_digest("b")})) == []
    assert restart_required(running, config()) == ["admin.token_hash"]


def test_a_first_rate_limit_section_needs_no_restart() -> None:
    assert restart_required(config(), config(rate_limit={"store": "memory"})) == []
    assert restart_required(
        config(rate_limit={"store": "memory"}), config(rate_limit={"store": "redis"})
    ) == ["rate_limit.store"]
