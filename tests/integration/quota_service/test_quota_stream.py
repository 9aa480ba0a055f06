"""The RLQS stream end to end over gRPC: reports in, assignments out, shares between Envoys."""

from __future__ import annotations

import grpc

from authz_service.ratelimit.rules import compile_rules, parse_domain_document
from authz_service.ratelimit.usage_store import MemoryUsageStore
from authz_service.services.quota_service import RECONNECT_GRACE_S, QuotaConfig
from tests.integration.quota_service.rig import (
    LIMITS,
    SETTINGS,
    blanket,
    keys,
    report,
    running_rig,
    token_bucket,
)
from tests.support.idp import wait_until

ALICE = {"user": "alice"}
BUCKET = "{gateway|user=alice}|f1000.0"  # its store key


async def test_a_lone_envoy_is_assigned_the_whole_limit_as_a_token_bucket() -> None:
    async with running_rig() as rig:
        envoy = await rig.envoy()
        response = await envoy.ask(report((ALICE, 1, 0, 0)))
        (action,) = response.bucket_action
        assert dict(action.bucket_id.bucket) == ALICE
        assert token_bucket(action) == (100, 100, 1)
        # Whole seconds, refreshed by every report (every 5 s in Envoy).
        assert action.quota_assignment_action.assignment_time_to_live.seconds == 10
        await envoy.close()


async def test_a_second_envoy_gets_a_share_and_the_first_is_pushed_its_smaller_one() -> None:
    async with running_rig() as rig:
        first, second = await rig.envoy(), await rig.envoy()
        await first.ask(report((ALICE, 300, 0, 5)))  # 60 requests/s
        answer = await second.ask(report((ALICE, 100, 100, 5)))  # 40 requests/s
        pushed = await first.next()  # without waiting for its next report
        mine = token_bucket(answer.bucket_action[0])[1]
        theirs = token_bucket(pushed.bucket_action[0])[1]
        # 5 each guaranteed, 90 split 60:40 -> 59 and 41 (rounded down).
        assert (theirs, mine) == (59, 41)
        assert mine + theirs <= 100


async def test_an_envoy_that_goes_silent_gives_its_share_back_after_the_ttl() -> None:
    async with running_rig() as rig:
        first, second = await rig.envoy(), await rig.envoy()
        await first.ask(report((ALICE, 250, 0, 5)))
        await second.ask(report((ALICE, 250, 0, 5)))
        await first.next()  # pushed: half
        # The first Envoy stops reporting, its stream still open (a partition).
        rig.clock.now += 9
        halved = await second.ask(report((ALICE, 250, 0, 5)))
        assert token_bucket(halved.bucket_action[0]) == (50, 50, 1)
        rig.clock.now += 2  # the first Envoy's entry expired (TTL 10 s)
        alone = await second.ask(report((ALICE, 250, 0, 5)))
        assert token_bucket(alone.bucket_action[0]) == (100, 100, 1)


async def test_an_envoy_whose_stream_ends_gives_its_share_back_one_report_later() -> None:
    async with running_rig() as rig:
        first, second = await rig.envoy(), await rig.envoy()
        await first.ask(report((ALICE, 250, 0, 5)))
        await second.ask(report((ALICE, 250, 0, 5)))
        await first.next()
        await first.close()  # Envoy stopped (or reconnects elsewhere under a new stream)
        await first.call.code()
        await wait_until(lambda: rig.service.holders(BUCKET) == 1)
        rig.clock.now += RECONNECT_GRACE_S - 1
        halved = await second.ask(report((ALICE, 250, 0, 5)))
        assert token_bucket(halved.bucket_action[0]) == (50, 50, 1)
        rig.clock.now += 2  # past the grace, well before the 10 s TTL
        alone = await second.ask(report((ALICE, 250, 0, 5)))
        assert token_bucket(alone.bucket_action[0]) == (100, 100, 1)


async def test_bucket_ids_are_echoed_and_matched_in_descriptor_order() -> None:
    async with running_rig() as rig:
        envoy = await rig.envoy()
        # Envoy sends a map: `user` may come before `tier`; the limit is tier -> user.
        bucket = {"user": "alice", "tier": "gold"}
        (action,) = (await envoy.ask(report((bucket, 1, 0, 0)))).bucket_action
        assert dict(action.bucket_id.bucket) == bucket
        # 600 a minute: refilled over the minute, a minute's worth at once.
        assert token_bucket(action) == (600, 600, 60)


async def test_buckets_without_a_limit_or_unlimited_are_allowed_and_a_zero_limit_denied() -> None:
    async with running_rig() as rig:
        envoy = await rig.envoy()
        response = await envoy.ask(
            report(
                ({"country": "fr"}, 1, 0, 0),
                ({"endpoint": "health"}, 1, 0, 0),
                ({"endpoint": "closed"}, 1, 0, 0),
            )
        )
        actions = envoy.actions(response)
        assert blanket(actions[keys(("country", "fr"))]) == "ALLOW_ALL"
        assert blanket(actions[keys(("endpoint", "health"))]) == "ALLOW_ALL"
        assert blanket(actions[keys(("endpoint", "closed"))]) == "DENY_ALL"


async def test_a_report_without_a_domain_ends_the_stream_with_invalid_argument() -> None:
    async with running_rig() as rig:
        envoy = await rig.envoy()
        await envoy.send(report((ALICE, 1, 0, 0), domain=""))
        assert await envoy.call.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_unusable_bucket_ids_are_skipped_and_the_rest_answered() -> None:
    async with running_rig() as rig:
        envoy = await rig.envoy()
        huge = {f"k{i}": "v" for i in range(40)}
        response = await envoy.ask(report((huge, 1, 0, 0), ({}, 1, 0, 0), (ALICE, 1, 0, 0)))
        assert [dict(a.bucket_id.bucket) for a in response.bucket_action] == [ALICE]


async def test_without_rate_limits_the_stream_fails_precondition() -> None:
    async with running_rig() as rig:
        rig.config.clear()
        rig.service._config = lambda: None  # no rate_limit section in force
        envoy = await rig.envoy()
        await envoy.send(report((ALICE, 1, 0, 0)))
        assert await envoy.call.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_shutting_down_ends_every_stream_cleanly() -> None:
    async with running_rig() as rig:
        envoy = await rig.envoy()
        await envoy.ask(report((ALICE, 1, 0, 0)))
        rig.service.end_streams()
        status = await envoy.call.code()
        assert status is grpc.StatusCode.OK


async def test_a_full_memory_store_answers_local_shares_from_what_it_holds() -> None:
    store = MemoryUsageStore(max_entries=1)
    async with running_rig(store) as rig:
        envoy = await rig.envoy()
        await envoy.ask(report((ALICE, 1, 0, 0)))
        # A second bucket needs a second entry: the store refuses, the service still answers.
        response = await envoy.ask(report(({"user": "bob"}, 1, 0, 0)))
        assert token_bucket(response.bucket_action[0]) == (100, 100, 1)


async def test_a_reloaded_limit_applies_to_the_next_report() -> None:
    async with running_rig() as rig:
        envoy = await rig.envoy()
        before = await envoy.ask(report((ALICE, 1, 0, 0)))
        reloaded = LIMITS.replace("requests_per_unit: 100, name: per-user", "requests_per_unit: 40")
        rules = compile_rules([parse_domain_document(reloaded, "limits.yaml")])
        rig.config[0] = QuotaConfig(rules, SETTINGS.model_copy(update={"assignment_ttl": 30.0}))
        after = await envoy.ask(report((ALICE, 5, 0, 5)))
        assert token_bucket(before.bucket_action[0]) == (100, 100, 1)
        assert token_bucket(after.bucket_action[0]) == (40, 40, 1)
        assert after.bucket_action[0].quota_assignment_action.assignment_time_to_live.seconds == 30
