"""The real RateLimitService behind envoy/envoy.yaml's ratelimit filter, counting in Redis
with the shipped limits (examples/ratelimit/domains/gateway.yaml): clients see 429 with
X-RateLimit headers, per-tier budgets come from ext_authz metadata, every descriptor of a
request counts, and a limit in shadow mode never blocks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import Stack, running_stack
from tests.support.redis import RedisServer
from tools.processes import REPO_ROOT

pytestmark = [pytest.mark.envoy, pytest.mark.redis, pytest.mark.usefixtures("fresh_minute")]

GATEWAY_LIMITS = REPO_ROOT / "examples" / "ratelimit" / "domains" / "gateway.yaml"
FREE_TIER_PER_MINUTE = 10  # gateway.yaml: tier=free, user
ADMIN_ENDPOINT_PER_SECOND = 20  # gateway.yaml: endpoint=admin


def on_redis(url: str, **rate_limit: Any) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["rate_limit"].update(
            store="redis",
            redis={"url": url, "key_prefix": f"e2e{uuid.uuid4().hex[:6]}:"},
            **rate_limit,
        )

    return edit


@pytest.fixture(scope="module")
def rl_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("rls-stack")
    with running_stack(workdir, edit_config=on_redis(redis_server.url)) as stack:
        yield stack


def get(stack: Stack, path: str, token: str) -> httpx.Response:
    with stack.client() as client:
        return client.get(stack.public_url + path, headers={"authorization": f"Bearer {token}"})


def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def test_a_free_tier_user_gets_429_with_rate_limit_headers_past_its_budget(
    rl_stack: Stack,
) -> None:
    token = rl_stack.idp.mint(user(), roles=["reader"], extra_claims={"tier": "free"})

    allowed = [get(rl_stack, "/api/orders", token) for _ in range(FREE_TIER_PER_MINUTE)]
    limited = get(rl_stack, "/api/orders", token)

    assert [r.status_code for r in allowed] == [200] * FREE_TIER_PER_MINUTE, rl_stack.logs()
    # The tightest limit first, then every descriptor's (client IP, user, tier+user, endpoint).
    assert allowed[0].headers["x-ratelimit-limit"] == (
        '10, 600;w=60;name="per-client-ip", 300;w=60;name="per-user", '
        '10;w=60;name="free-per-user", 500;w=1;name="api-endpoint"'
    )
    assert allowed[0].headers["x-ratelimit-remaining"] == "9"
    assert limited.status_code == 429
    assert limited.headers["x-envoy-ratelimited"] == "true"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(limited.headers["x-ratelimit-reset"]) <= 60
    assert "version" not in limited.text  # the upstream never answered


def test_the_tier_from_the_token_picks_the_budget(rl_stack: Stack) -> None:
    gold = rl_stack.idp.mint(user(), roles=["reader"], extra_claims={"tier": "gold"})

    statuses = [get(rl_stack, "/api/orders", gold).status_code for _ in range(12)]

    assert statuses == [200] * 12  # gold: 1,000 a minute, where free stops at 10


def test_any_descriptor_over_its_limit_refuses_the_request(rl_stack: Stack) -> None:
    # A gold admin is far inside every per-user budget; the admin endpoint's 20 a second,
    # shared by every caller, is what stops them (descriptor `endpoint=admin`). 60 requests
    # at once: however they fall across second boundaries, some second gets more than 20.
    admin = rl_stack.idp.mint(user(), roles=["admin"], extra_claims={"tier": "gold"})
    headers = {"authorization": f"Bearer {admin}"}
    with rl_stack.client() as client, ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(
            pool.map(
                lambda _: client.get(rl_stack.public_url + "/admin/users", headers=headers),
                range(3 * ADMIN_ENDPOINT_PER_SECOND),
            )
        )

    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    assert {r.status_code for r in responses} == {200, 429}
    assert limited[0].headers["x-ratelimit-limit"] == (
        '20, 600;w=60;name="per-client-ip", 300;w=60;name="per-user", '
        '1000;w=60;name="gold-per-user", 20;w=1;name="admin-endpoint"'
    )


def test_a_limit_in_shadow_mode_counts_but_never_blocks(
    tmp_path: Path,
    redis_server: RedisServer,
) -> None:
    limits = yaml.safe_load(GATEWAY_LIMITS.read_text())
    for entry in limits["descriptors"]:
        if entry["key"] == "tier" and entry.get("value") == "free":
            entry["descriptors"][0]["shadow_mode"] = True
    edit = on_redis(redis_server.url, config_dir=None, domains=[limits])

    with running_stack(tmp_path, edit_config=edit) as stack:
        token = stack.idp.mint(user(), roles=["reader"], extra_claims={"tier": "free"})
        statuses = [get(stack, "/api/orders", token).status_code for _ in range(12)]

    assert statuses == [200] * 12
