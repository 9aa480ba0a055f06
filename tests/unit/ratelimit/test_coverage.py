"""Coverage of Envoy descriptor shapes by rate-limit configs (pure core)."""

from __future__ import annotations

from authz_service.ratelimit.coverage import ANY, DescriptorShape, check_coverage, describe_coverage
from authz_service.ratelimit.rules import compile_rules, parse_domain_document

LIMITS = compile_rules(
    [
        parse_domain_document(
            """
domain: gateway
descriptors:
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 600}
  - key: endpoint
    value: api
    rate_limit: {unit: second, requests_per_unit: 50}
  - key: tier
    value: gold
    descriptors:
      - key: user
        rate_limit: {unit: minute, requests_per_unit: 3000}
  - key: tier
    value: free
    descriptors:
      - key: user
        rate_limit: {unit: minute, requests_per_unit: 60}
""",
            "gateway.yaml",
        )
    ]
)


def shape(*entries: tuple[str, str | None], domain: str = "gateway") -> DescriptorShape:
    return DescriptorShape(domain, tuple(entries), "route /api/")


def test_a_key_only_limit_covers_every_value() -> None:
    assert check_coverage([shape(("remote_address", ANY))], LIMITS) == []


def test_a_fixed_value_with_a_limit_is_covered() -> None:
    assert check_coverage([shape(("endpoint", "api"))], LIMITS) == []


def test_a_fixed_value_without_a_limit_is_an_error() -> None:
    (finding,) = check_coverage([shape(("endpoint", "admin"))], LIMITS)

    assert finding.severity == "error"
    assert "never rate limited" in str(finding)
    assert "(endpoint, admin)" in str(finding)


def test_limits_for_some_values_only_is_a_warning_naming_them() -> None:
    (finding,) = check_coverage([shape(("tier", ANY), ("user", ANY))], LIMITS)

    assert finding.severity == "warning"
    assert "tier: free, gold" in finding.message


def test_an_unknown_domain_is_an_error() -> None:
    (finding,) = check_coverage([shape(("remote_address", ANY), domain="edge")], LIMITS)

    assert finding.severity == "error"
    assert "domain 'edge'" in finding.message


def test_the_same_shape_on_many_routes_is_reported_once() -> None:
    findings = check_coverage([shape(("endpoint", "admin")), shape(("endpoint", "admin"))], LIMITS)

    assert len(findings) == 1


def test_every_route_sending_an_uncovered_descriptor_is_named() -> None:
    shapes = [
        DescriptorShape("gateway", (("endpoint", "admin"),), "route /admin"),
        DescriptorShape("gateway", (("endpoint", "admin"),), "route /admin/users"),
    ]

    (finding,) = check_coverage(shapes, LIMITS)

    assert finding.wheres == ("route /admin", "route /admin/users")
    assert str(finding).startswith("error: route /admin; route /admin/users: [(endpoint, admin)]")


def test_the_description_lists_covered_descriptors_with_their_limits() -> None:
    findings = describe_coverage(
        [shape(("remote_address", ANY)), shape(("endpoint", "admin"))], LIMITS
    )

    assert [f.severity for f in findings] == ["ok", "error"]
    assert findings[0].message.startswith("limited by ")
