"""The example rate-limit configs we ship load and say what their comments claim."""

from __future__ import annotations

import yaml

from authz_service.ratelimit.rules import load_rate_limit_rules
from authz_service.schema import RateLimitSettings
from tests.support import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples" / "ratelimit"


def names(domain: str, *entries: tuple[str, str]) -> list[str]:
    config = load_rate_limit_rules(EXAMPLES / "domains")
    return [limit.name for limit in config.get_limits(domain, list(entries))]


def test_example_service_settings_load_the_example_directory() -> None:
    data = yaml.safe_load((EXAMPLES / "service-config-snippet.yaml").read_text())
    settings = RateLimitSettings.model_validate(data["rate_limit"])
    rules = load_rate_limit_rules(settings.config_dir, settings.domains, base_dir=REPO_ROOT)
    assert rules.domains == {"edge", "authz", "gateway"}


def test_edge_example_layers() -> None:
    assert names("edge", ("remote_address", "192.0.2.1")) == ["per_ip"]
    assert names("edge", ("user", "alice")) == ["user_burst", "user_daily"]
    assert names("edge", ("tier", "free"), ("user", "alice")) == ["free"]
    assert names("edge", ("path", "/api/v2/search?q=x")) == ["search"]
    assert names("edge", ("method", "GET"), ("user", "alice")) == ["reads"]
    assert names("edge", ("method", "DELETE"), ("user", "alice")) == ["deletes"]


def test_authz_example_falls_back_to_the_free_tier_for_unknown_tiers() -> None:
    assert names("authz", ("tier", "gold"), ("principal", "p")) == ["gold"]
    assert names("authz", ("tier", ""), ("principal", "p")) == ["free_burst", "free_daily"]
