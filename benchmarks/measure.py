"""Run compared targets side by side: interleaved rounds, CPU per request, medians.

The machine is shared (2 cores, and other work may run on it), so the rows that a ratio
compares run in alternation — round 1 of A, B, C, then round 2 of A, B, C... — and each row
reports the median over its rounds. What the rest of the machine used meanwhile is recorded.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmarks.load import LoadResult
from benchmarks.procstat import CpuMeter

Row = dict[str, Any]


def skipped(key: str, name: str, why: str) -> Row:
    return {"key": key, "name": name, "skipped": why}


def _system_busy_seconds() -> float:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Target:
    """One row: how to put load on it and which processes' CPU to charge to it."""

    key: str
    name: str
    run: Callable[[float], LoadResult]  # seconds of load -> result
    processes: Mapping[str, int]  # label -> pid (the process tree is measured)
    verified: str = ""
    notes: list[str] = field(default_factory=list)


def run_group(targets: list[Target], *, rounds: int, seconds: float, warmup: float) -> list[Row]:
    results: dict[str, list[tuple[LoadResult, dict[str, float], float]]] = {
        t.key: [] for t in targets
    }
    warmed: dict[str, int] = dict.fromkeys(results, 0)
    for _ in range(rounds):
        for target in targets:
            if warmup > 0:
                warmed[target.key] += target.run(
                    warmup
                ).completed_total  # not measured: connections, caches and pools warm up
            meters = {label: CpuMeter(pid) for label, pid in target.processes.items()}
            for meter in meters.values():
                meter.start()
            busy_before = _system_busy_seconds()
            result = target.run(seconds)
            busy = _system_busy_seconds() - busy_before
            cpu = {label: meter.stop() for label, meter in meters.items()}
            others = max(0.0, busy - sum(cpu.values()) - result.client_cpu_s)
            results[target.key].append((result, cpu, others / seconds))
    rows = [_row(target, results[target.key]) for target in targets]
    for row in rows:
        row["warmup_completed"] = warmed[row["key"]]
    return rows


def _row(target: Target, runs: list[tuple[LoadResult, dict[str, float], float]]) -> Row:
    loads = [load for load, _, _ in runs]
    completed = sum(load.completed_total for load in loads) or 1

    def median(attribute: str) -> float:
        return round(statistics.median(getattr(load, attribute) for load in loads), 3)

    errors: dict[str, int] = {}
    for load in loads:
        for kind, count in load.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    row: Row = {
        "key": target.key,
        "name": target.name,
        "loader": loads[0].tool,
        "rps": round(statistics.median(load.rps for load in loads), 1),
        "rps_rounds": [round(load.rps, 1) for load in loads],
        "p50_ms": median("p50_ms"),
        "p90_ms": median("p90_ms"),
        "p99_ms": median("p99_ms"),
        "max_ms": round(max(load.max_ms for load in loads), 3),
        "requests": sum(load.requests for load in loads),
        "completed_total": completed,
        "errors": errors,
        "loader_cpu_us_per_req": round(
            sum(load.client_cpu_s for load in loads) / completed * 1e6, 1
        ),
        # Busy CPU of everything else on the machine, in cores (2 = both cores fully busy).
        "other_cpu_cores": round(statistics.median(o for _, _, o in runs), 2),
    }
    for label in target.processes:
        seconds = sum(cpu[label] for _, cpu, _ in runs)
        row[f"{label}_cpu_us_per_req"] = round(seconds / completed * 1e6, 1)
    if target.verified:
        row["verified"] = target.verified
    if target.notes:
        row["notes"] = target.notes
    return row


def ratio(
    name: str, rows: list[Row], numerator: str, denominator: str, target: float | None = None
) -> Row:
    """rps(numerator) / rps(denominator), or why it cannot be computed: a missing or
    skipped row, or a row with any failed request."""
    by_key = {row["key"]: row for row in rows}
    entry: Row = {"name": name, "numerator": numerator, "denominator": denominator}
    if target is not None:
        entry["target"] = target
    for key in (numerator, denominator):
        row = by_key.get(key)
        if row is None or "rps" not in row:
            why = "no such row" if row is None else row.get("skipped") or row.get("error")
            entry["skipped"] = f"{key}: {why}"
            return entry
    for key in (numerator, denominator):
        failed = sum(by_key[key].get("errors", {}).values())
        if failed:
            # A row with failed answers measured something else (fast errors): no ratio.
            entry["skipped"] = f"{key}: {failed} requests failed ({by_key[key]['errors']})"
            return entry
    entry["value"] = round(by_key[numerator]["rps"] / by_key[denominator]["rps"], 3)
    if target is not None:
        entry["meets_target"] = entry["value"] >= target
    return entry
