"""Run every benchmark scenario side by side, print the table, write JSON and a chart.

    python -m benchmarks.run                 # full: 15 s per row, 3 rounds, 100k checks, 5 min soak
    python -m benchmarks.run --quick         # seconds: for CI and a first look
    python -m benchmarks.run --duration 20 --soak 60 --only 1_check 3_envoy

See benchmarks/README.md for what each scenario means.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import fixtures, load, report, scenarios, services
from benchmarks.scenarios import Bench, Settings
from tools.dev_idp import DevIdentityProvider

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _settings(args: argparse.Namespace) -> Settings:
    if args.quick:
        seconds = args.duration if args.duration is not None else 1.0
        return Settings(
            seconds=seconds,
            rounds=args.rounds or 1,
            warmup=0.5,
            memory_checks=args.checks or 2_000,
            soak_seconds=args.soak if args.soak is not None else max(1.0, seconds),
        )
    return Settings(
        seconds=args.duration if args.duration is not None else 15.0,
        rounds=args.rounds or 3,
        warmup=1.0,
        memory_checks=args.checks or 100_000,
        soak_seconds=args.soak if args.soak is not None else 300.0,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="seconds instead of minutes")
    parser.add_argument("--duration", type=float, help="seconds of load per row (all rounds)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per compared group")
    parser.add_argument("--soak", type=float, help="seconds of the memory soak")
    parser.add_argument("--checks", type=int, help="checks before the first RSS reading")
    parser.add_argument("--only", nargs="*", choices=list(scenarios.SCENARIOS), help="scenarios")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--chart", type=Path, default=RESULTS / "latest.png")
    args = parser.parse_args(argv)
    settings = _settings(args)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    loadavg_before = _loadavg()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="authz-bench-") as tmp:
        workdir = Path(tmp)
        idp = DevIdentityProvider()
        idp.start()
        pool = fixtures.TokenPool.mint(idp)
        h2grpc, h2grpc_missing = load.build_h2grpc(workdir)
        check_bodies = fixtures.check_bodies(pool)
        rate_limit_bodies = fixtures.rate_limit_bodies(len(pool.tokens))
        tokens_file = workdir / "tokens.txt"
        tokens_file.write_text("\n".join(pool.tokens) + "\n")
        null_server, null_port = services.start_null_server(workdir)
        bench = Bench(
            settings=settings,
            workdir=workdir,
            pool=pool,
            h2grpc=h2grpc,
            h2grpc_missing=h2grpc_missing,
            check_frames=fixtures.write_frames(workdir / "check.bin", check_bodies),
            check_single=fixtures.write_frames(workdir / "check-one.bin", check_bodies[:1]),
            rate_limit_frames=fixtures.write_frames(workdir / "rls.bin", rate_limit_bodies),
            rate_limit_single=fixtures.write_frames(workdir / "rls-one.bin", rate_limit_bodies[:1]),
            tokens_file=tokens_file,
            null_port=null_port,
            null_pid=null_server.popen.pid,
        )
        results = {}
        try:
            for name in args.only or scenarios.SCENARIOS:
                print(f"running {name} ...", file=sys.stderr, flush=True)
                results[name] = scenarios.run_scenario(name, bench)
        finally:
            bench.stop_all()
            null_server.stop()
            idp.stop()
    document = {
        "started": started,
        "elapsed_s": round(time.monotonic() - t0, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "kernel": platform.release(),
            "loadavg_before": loadavg_before,
            "loadavg_after": _loadavg(),
            "tools": {**load.tool_versions(), "h2grpc": "built" if h2grpc else h2grpc_missing},
        },
        "settings": {
            "quick": args.quick,
            "seconds_per_row": settings.seconds,
            "rounds": settings.rounds,
            "seconds_per_round": settings.per_round,
            "warmup_s": settings.warmup,
            "grpc_connections": settings.conns,
            "grpc_streams_per_connection": settings.streams,
            "http_connections": settings.http_conns,
            "token_pool": len(pool.tokens),
            "rbac_rules": len(fixtures.policy_rules()),
            "memory_checks": settings.memory_checks,
            "soak_s": settings.soak_seconds,
        },
        "scenarios": results,
    }
    report.write_json(document, args.out)
    chart_problem = report.draw_chart(document, args.chart)
    print(report.format_table(document))
    print(
        f"\nwrote {args.out}"
        + (f" (no chart: {chart_problem})" if chart_problem else f" and {args.chart}")
    )
    if shutil.which("h2load") is None:
        print("note: h2load is not installed (apt-get install nghttp2-client)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
