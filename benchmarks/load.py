"""The load generators, each a separate process: h2grpc (ours, rotating bodies), h2load, wrk.

Every runner returns a LoadResult; the CPU the generator itself used is measured from the
outside (RUSAGE_CHILDREN), so all three are accounted for in the same way.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.messages import CHECK_PATH, RATE_LIMIT_PATH

LOADGEN_SOURCE = Path(__file__).resolve().parent / "loadgen" / "h2grpc.c"
WRK_SCRIPT = Path(__file__).resolve().parent / "loadgen" / "tokens.lua"


# Every benchmark body expects this answer: an allowed Check, a ShouldRateLimit under limit.
EXPECTED_ANSWER = {CHECK_PATH: "check-allow", RATE_LIMIT_PATH: "rls-ok"}


class LoadError(RuntimeError):
    pass


@dataclass
class LoadResult:
    tool: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int  # completed in the measured window
    completed_total: int  # including warm-up and drain (what server-side counters saw)
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], timeout: float) -> tuple[str, float]:
    before = _children_cpu()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise LoadError(f"{Path(argv[0]).name} exited {done.returncode}: {done.stderr[-500:]}")
    return done.stdout, _children_cpu() - before


def build_h2grpc(out_dir: Path) -> tuple[Path | None, str]:
    """Compile the loader; (None, why) when no C compiler or libnghttp2 headers."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler (apt-get install gcc libnghttp2-dev)"
    binary = out_dir / "h2grpc"
    done = subprocess.run(
        [compiler, "-O2", "-o", str(binary), str(LOADGEN_SOURCE), "-lnghttp2"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None, f"cannot build h2grpc (apt-get install libnghttp2-dev): {done.stderr[-200:]}"
    return binary, ""


def run_h2grpc(
    binary: Path,
    *,
    ports: list[int],
    path: str,
    data: Path,
    conns: int,
    streams: int,
    duration: float | None = None,
    warmup: float = 0.0,
    requests: int | None = None,
    expect: str | None = "auto",
) -> LoadResult:
    """`expect`: the answer that counts as a success (h2grpc --expect); "auto": an allowed
    Check or an OK ShouldRateLimit by `path`; None: any gRPC OK."""
    if expect == "auto":
        expect = EXPECTED_ANSWER.get(path)
    argv = [
        str(binary),
        "--ports",
        ",".join(map(str, ports)),
        "--path",
        path,
        "--data",
        str(data),
        "--conns",
        str(conns),
        "--streams",
        str(streams),
    ]
    if expect is not None:
        argv += ["--expect", expect]
    if requests is not None:
        argv += ["--requests", str(requests)]
    else:
        argv += ["--duration", str(duration), "--warmup", str(warmup)]
    stdout, cpu = _run(argv, timeout=(duration or 0) + warmup + 600)
    out = json.loads(stdout)
    return LoadResult(
        tool="h2grpc",
        rps=out["rps"],
        p50_ms=out["p50_us"] / 1000,
        p90_ms=out["p90_us"] / 1000,
        p99_ms=out["p99_us"] / 1000,
        max_ms=out["max_us"] / 1000,
        requests=out["requests"],
        completed_total=out["completed_total"],
        errors={
            key: out[key]
            for key in ("grpc_errors", "http_errors", "stream_errors", "unexpected", "unfinished")
            if out[key]
        },
        client_cpu_s=cpu,
    )


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q * len(sorted_values) + 0.4999)))
    return sorted_values[rank - 1]


def run_h2load(
    *,
    port: int,
    path: str,
    data: Path,
    conns: int,
    streams: int,
    duration: float,
    warmup: float,
    log_file: Path,
) -> LoadResult:
    """h2load with one prepared gRPC frame; percentiles from its per-request log."""
    argv = [
        shutil.which("h2load") or "h2load",
        "-d",
        str(data),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-c",
        str(conns),
        "-m",
        str(streams),
        "-D",
        f"{round(duration * 1000)}ms",
        "--warm-up-time",
        f"{round(warmup * 1000)}ms",
        "--log-file",
        str(log_file),
        f"http://127.0.0.1:{port}{path}",
    ]
    stdout, cpu = _run(argv, timeout=duration + warmup + 120)
    finished = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", stdout)
    counts = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        stdout,
    )
    if finished is None or counts is None:
        raise LoadError(f"unexpected h2load output: {stdout[-500:]}")
    latencies = sorted(
        int(line.split("\t")[2]) / 1000
        for line in log_file.read_text().splitlines()
        if line.count("\t") == 2
    )
    failed, errored, timeouts = (int(counts.group(i)) for i in (4, 5, 6))
    return LoadResult(
        tool="h2load",
        rps=float(finished.group(1)),
        p50_ms=_percentile(latencies, 0.50),
        p90_ms=_percentile(latencies, 0.90),
        p99_ms=_percentile(latencies, 0.99),
        max_ms=latencies[-1] if latencies else 0.0,
        requests=int(counts.group(2)),
        completed_total=int(counts.group(2)),
        errors={
            k: v
            for k, v in {"failed": failed, "errored": errored, "timeout": timeouts}.items()
            if v
        },
        client_cpu_s=cpu,
    )


def run_wrk(
    *, url: str, tokens_file: Path, conns: int, duration: float, threads: int = 1
) -> LoadResult:
    """wrk over HTTP/1.1 keep-alive; the Lua script rotates the Authorization header."""
    argv = [
        shutil.which("wrk") or "wrk",
        "-t",
        str(threads),
        "-c",
        str(conns),
        "-d",
        f"{max(1, round(duration))}s",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        str(tokens_file),
    ]
    stdout, cpu = _run(argv, timeout=duration + 120)
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise LoadError(f"unexpected wrk output: {stdout[-500:]}")
    out = json.loads(line.removeprefix("BENCH_JSON "))
    errors = {k: v for k, v in out["errors"].items() if v}
    # wrk counts an answer with a status of 400 or more as a completed request and as a
    # `status` error: throughput counts only the others (a 3xx would pass: none is expected).
    answered = out["requests"] - out["errors"]["status"]
    return LoadResult(
        tool="wrk",
        rps=answered / (out["duration_us"] / 1e6),
        p50_ms=out["p50_us"] / 1000,
        p90_ms=out["p90_us"] / 1000,
        p99_ms=out["p99_us"] / 1000,
        max_ms=out["max_us"] / 1000,
        requests=answered,
        completed_total=out["requests"],
        errors=errors,
        client_cpu_s=cpu,
    )


def tool_versions() -> dict[str, str]:
    versions: dict[str, str] = {"python": sys.version.split()[0]}
    for name, argv in {"h2load": ["h2load", "--version"], "wrk": ["wrk", "-v"]}.items():
        if shutil.which(name):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            versions[name] = (done.stdout + done.stderr).strip().splitlines()[0]
    return versions
