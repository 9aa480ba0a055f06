"""The run's table (stdout), JSON and chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Report = dict[str, Any]


def _cpu(row: dict[str, Any]) -> str:
    parts = [
        f"{label.removesuffix('_cpu_us_per_req')} {row[label]:.0f}"
        for label in row
        if label.endswith("_cpu_us_per_req") and not label.startswith("loader")
    ]
    return ", ".join(parts) or "-"


def format_table(report: Report) -> str:
    lines: list[str] = []
    machine = report["machine"]
    lines.append(
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), load avg before "
        f"{machine['loadavg_before']}, after {machine['loadavg_after']}; "
        f"{report['settings']['rounds']} interleaved round(s) of "
        f"{report['settings']['seconds_per_round']:g} s per row"
    )
    header = f"  {'':52} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}  {'CPU us/req':<22} {'others':>6}"  # noqa: E501
    for scenario in report["scenarios"].values():
        lines += ["", scenario["title"], header]
        for row in scenario["rows"]:
            name = row["name"][:52]
            if "skipped" in row:
                lines.append(f"  {name:52} skipped: {row['skipped']}")
            elif "error" in row:
                lines.append(f"  {name:52} ERROR: {row['error']}")
            elif "rps" in row:
                errors = f"  errors {row['errors']}" if row["errors"] else ""
                lines.append(
                    f"  {name:52} {row['rps']:8.0f} {row['p50_ms']:7.2f} {row['p90_ms']:7.2f} "
                    f"{row['p99_ms']:7.2f}  {_cpu(row):<22} {row['other_cpu_cores']:6.2f}{errors}"
                )
                if "redis_commands_per_rpc" in row:
                    lines.append(
                        f"  {'':52} Redis per RPC: {row['redis_script_calls_per_rpc']} script "
                        f"calls (round trips), {row['redis_commands_per_rpc']} commands incl. "
                        "those run inside the script"
                    )
            elif row["key"] == "memory":
                total = {
                    k: sum(row[k].values())
                    for k in ("rss_start_mb", "rss_after_checks_mb", "rss_after_soak_mb")
                }
                lines.append(
                    f"  RSS MiB (all processes): start {total['rss_start_mb']:.1f}, after "
                    f"{row['checks']:,} checks {total['rss_after_checks_mb']:.1f}, after soak "
                    f"({row['soak_requests']:,} requests at {row['soak_rps']:.0f}/s) "
                    f"{total['rss_after_soak_mb']:.1f}: growth {row['soak_growth_pct']:+.2f}%"
                )
        for entry in scenario["ratios"]:
            if "skipped" in entry:
                lines.append(f"  ratio {entry['name']}: skipped ({entry['skipped']})")
                continue
            target = ""
            if "target" in entry:
                verdict = "met" if entry["meets_target"] else "MISSED"
                target = f"  (target >= {entry['target']}: {verdict})"
            elif "target_max" in entry:
                verdict = "met" if entry["meets_target"] else "MISSED"
                target = f"  (target <= {entry['target_max']}: {verdict})"
            lines.append(f"  ratio {entry['name']}: {entry['value']}{target}")
    lines.append("")
    lines.append("CPU us/req: CPU time of that process tree per completed request; others: CPU")
    lines.append("cores busy with anything else on the machine meanwhile (2 = all of it).")
    return "\n".join(lines)


def write_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def draw_chart(report: Report, path: Path) -> str | None:
    """A PNG comparing every measured row; None, or why no chart was drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[dev]')"
    rows = [
        (scenario_key, row)
        for scenario_key, scenario in report["scenarios"].items()
        for row in scenario["rows"]
        if "rps" in row
    ]
    if not rows:
        return "no measured rows"
    labels = [f"{key.split('_')[0]}. {row['name']}" for key, row in rows]
    colours = {"1": "tab:blue", "2": "tab:orange", "3": "tab:green", "4": "tab:purple"}
    bar_colours = [colours.get(key.split("_")[0], "tab:gray") for key, _ in rows]
    positions = list(range(len(rows)))[::-1]
    figure, (rps_axis, latency_axis, cpu_axis) = plt.subplots(
        1, 3, figsize=(18, 0.45 * len(rows) + 2.2), sharey=True
    )
    rps_axis.barh(positions, [row["rps"] for _, row in rows], color=bar_colours)
    rps_axis.set_yticks(positions, labels, fontsize=8)
    rps_axis.set_xlabel("requests/s (median of rounds)")
    for position, (_, row) in zip(positions, rows, strict=True):
        rps_axis.text(row["rps"], position, f" {row['rps']:.0f}", va="center", fontsize=7)
    height = 0.27
    for offset, (field, colour) in enumerate(
        (("p50_ms", "tab:cyan"), ("p90_ms", "tab:blue"), ("p99_ms", "navy"))
    ):
        latency_axis.barh(
            [p + (1 - offset) * height for p in positions],
            [row[field] for _, row in rows],
            height=height,
            color=colour,
            label=field.removesuffix("_ms"),
        )
    latency_axis.set_xlabel("latency, ms")
    latency_axis.legend(fontsize=8)
    left = [0.0] * len(rows)
    for label, colour in (("server", "tab:blue"), ("authz", "tab:red"), ("envoy", "tab:green")):
        values = [row.get(f"{label}_cpu_us_per_req", 0.0) for _, row in rows]
        if any(values):
            cpu_axis.barh(positions, values, left=left, color=colour, label=label)
            left = [a + b for a, b in zip(left, values, strict=True)]
    cpu_axis.set_xlabel("CPU per request, us (server / authz / envoy)")
    cpu_axis.legend(fontsize=8)
    machine = report["machine"]
    figure.suptitle(
        f"authz_service benchmarks, {report['started']} - {machine['cpus']} CPUs, "
        f"loopback; compare within one run",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def loadavg() -> str:
    """/proc/loadavg as the kernel writes it: a side-by-side run records it before and after."""
    return Path("/proc/loadavg").read_text().strip()


def publish_text(
    heading: str, load_before: str, load_after: str, rows: list[str], out: Path | None
) -> None:
    """A side-by-side benchmark's text report: printed, and written to `out` when given."""
    lines = [heading, f"/proc/loadavg before: {load_before}; after: {load_after}", *rows]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if out:
        out.write_text(text)
