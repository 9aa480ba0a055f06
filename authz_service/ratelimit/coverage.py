"""Does every descriptor an Envoy config can send have a limit? (pure: no Envoy model here)

A route's `rate_limits` action list makes one descriptor; its values are either fixed by the
config (generic_key, header_value_match) or only known per request (client IP, a header, ext_authz
metadata). A descriptor that matches no limit is silently unlimited — the misconfiguration
users of envoyproxy/ratelimit most often discover in production. For each descriptor shape:

- error: no limit for it at all (or the domain is unknown);
- warning: limits exist only for some explicit values of a per-request entry (e.g. tiers
  gold/silver/free), so any other value (a new tier) is unlimited.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from authz_service.ratelimit.rules import RateLimitRules

# A value known only per request: probed with a value no config would name.
ANY = None
_PROBE = "\x00any-value\x00"

ShapeEntry = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class DescriptorShape:
    domain: str
    entries: tuple[ShapeEntry, ...]
    where: str  # e.g. "listener public, route /api/"

    def describe(self) -> str:
        return ", ".join(
            f"({key}, {value if value is not None else '*'})" for key, value in self.entries
        )


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str  # "error" | "warning" | "ok"
    shape: DescriptorShape
    message: str
    # Every place that sends this descriptor (several routes often share one).
    wheres: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = "; ".join(self.wheres or (self.shape.where,))
        return f"{self.severity}: {where}: [{self.shape.describe()}] {self.message}"


def _grouped(shapes: Iterable[DescriptorShape]) -> list[tuple[DescriptorShape, tuple[str, ...]]]:
    """Each distinct (domain, entries) once, with every place that sends it, in order."""
    groups: dict[tuple[str, tuple[ShapeEntry, ...]], list[DescriptorShape]] = {}
    for shape in shapes:
        groups.setdefault((shape.domain, shape.entries), []).append(shape)
    return [
        (same[0], tuple(dict.fromkeys(shape.where for shape in same))) for same in groups.values()
    ]


def _probe(shape: DescriptorShape) -> list[tuple[str, str]]:
    return [(key, value if value is not None else _PROBE) for key, value in shape.entries]


def describe_coverage(shapes: Iterable[DescriptorShape], limits: RateLimitRules) -> list[Finding]:
    """Every distinct descriptor with its verdict: covered ones as "ok" naming their limits."""
    findings: list[Finding] = []
    for shape, wheres in _grouped(shapes):
        problems = check_coverage([shape], limits)
        if problems:
            findings.extend(Finding(p.severity, shape, p.message, wheres) for p in problems)
            continue
        names = [
            "unlimited"
            if limit.unlimited
            else (limit.name or f"{limit.requests_per_unit} per {limit.window_s:g} s")
            for limit in limits.get_limits(shape.domain, _probe(shape))
        ]
        findings.append(Finding("ok", shape, f"limited by {', '.join(names)}", wheres))
    return findings


def check_coverage(shapes: Iterable[DescriptorShape], limits: RateLimitRules) -> list[Finding]:
    findings: list[Finding] = []
    for shape, wheres in _grouped(shapes):
        if not limits.has_domain(shape.domain):
            findings.append(
                Finding(
                    "error",
                    shape,
                    f"domain {shape.domain!r} is not in the rate-limit config",
                    wheres,
                )
            )
            continue
        if limits.get_limits(shape.domain, _probe(shape)):
            continue
        explicit = _explicit_values(limits, shape.domain, shape.entries)
        if explicit:
            listed = "; ".join(f"{key}: {', '.join(sorted(values))}" for key, values in explicit)
            findings.append(
                Finding(
                    "warning",
                    shape,
                    f"limited only for these values ({listed}); any other value is unlimited",
                    wheres,
                )
            )
        else:
            findings.append(
                Finding("error", shape, "matches no limit: it is never rate limited", wheres)
            )
    return findings


def _explicit_values(
    limits: RateLimitRules, domain: str, entries: Sequence[ShapeEntry]
) -> list[tuple[str, set[str]]]:
    """For each per-request entry, the explicit values under which the descriptor has a limit."""
    found: list[tuple[str, set[str]]] = []
    for position, (key, value) in enumerate(entries):
        if value is not None:
            continue
        values = {
            candidate
            for candidate in limits.explicit_values(domain, key)
            if limits.get_limits(
                domain,
                [
                    (k, candidate if i == position else (v if v is not None else _PROBE))
                    for i, (k, v) in enumerate(entries)
                ],
            )
        }
        if values:
            found.append((key, values))
    return found
