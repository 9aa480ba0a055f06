"""HitPlans: a request's hits worked out once, the same as hits_per_descriptor, and bounded."""

from __future__ import annotations

from authz_service.ratelimit.descriptor_status import hits_per_descriptor
from authz_service.ratelimit.hit_plans import HitPlans
from authz_service.ratelimit.results import Descriptor, RateLimitRequestData
from authz_service.ratelimit.rules import compile_rules, parse_domain_document

RULES = compile_rules(
    [
        parse_domain_document(
            """
domain: api
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 10, name: per_user}
  - key: tier
    value: gold
    rate_limit: {unit: minute, requests_per_unit: 100, replaces: [{name: per_user}]}
""",
            "api.yaml",
        )
    ]
)


def request(user: str, *, gold: bool = False, hits: int = 0) -> RateLimitRequestData:
    descriptors = [Descriptor((("user", user),))]
    if gold:
        descriptors.append(Descriptor((("tier", "gold"),)))
    return RateLimitRequestData("api", tuple(descriptors), hits)


def test_a_plan_holds_what_hits_per_descriptor_works_out_across_descriptors() -> None:
    gold = request("alice", gold=True, hits=3)
    plan = HitPlans(RULES).plan(gold)

    assert list(plan.per_descriptor) == hits_per_descriptor(RULES, gold)
    # `replaces` across descriptors: the tier's limit replaced the user's.
    assert [h.limit for h in plan.hits] == [100]
    assert all(h.hits == 3 for h in plan.hits)


def test_a_repeated_request_reuses_its_plan_and_another_gets_its_own() -> None:
    plans = HitPlans(RULES)
    first = plans.plan(request("alice"))

    assert plans.plan(request("alice")) is first
    assert plans.plan(request("bob")).hits[0].key != first.hits[0].key
    assert plans.plan(request("alice", hits=2)).hits[0].hits == 2


def test_when_full_the_oldest_plan_makes_room() -> None:
    plans = HitPlans(RULES, max_entries=2)
    oldest = plans.plan(request("a"))
    plans.plan(request("b"))
    plans.plan(request("c"))

    assert len(plans) == 2
    assert plans.plan(request("a")) is not oldest  # worked out again
    assert plans.plan(request("a")) == oldest
