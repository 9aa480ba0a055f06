"""Profile the service under the load of scenario 1 (Check) or 2 (ShouldRateLimit) with py-spy.

    python -m benchmarks.profile [--seconds 15] [--cold | --rate-limit] [--http]

--http loads the HTTP check endpoint on granian with wrk (1,000 rotating tokens) instead of
gRPC Check with h2grpc. Writes results/<check|check-cold|rate-limit>[-http]-profile.svg
(flame graph) and prints the functions with the largest share of samples, own time and
inclusive. Needs `pip install py-spy` (and
ptrace rights); --rate-limit needs redis-server.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from benchmarks import fixtures, load, messages, services
from tools.dev_idp import DevIdentityProvider
from tools.processes import free_port

RESULTS = Path(__file__).resolve().parent / "results"


def _label(frame: str) -> str:
    """'check (authz_service/services/check.py:41)' -> 'check (check.py)'."""
    name, _, location = frame.rpartition(" (")
    return f"{name} ({location.rstrip(')').rsplit('/', 1)[-1].split(':')[0]})"


def summarise(collapsed: Path, top: int = 25) -> str:
    """Own and inclusive share of samples per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [_label(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("inclusive:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--cold", action="store_true", help="token cache smaller than the pool")
    kind.add_argument(
        "--rate-limit", action="store_true", help="ShouldRateLimit, 3 descriptors, on Redis"
    )
    parser.add_argument(
        "--http", action="store_true", help="the HTTP check endpoint on granian, through wrk"
    )
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="authz-profile-") as tmp:
        workdir = Path(tmp)
        idp = DevIdentityProvider()
        idp.start()
        pool = fixtures.TokenPool.mint(idp)
        binary, missing = load.build_h2grpc(workdir)
        if binary is None:
            print(missing, file=sys.stderr)
            return 1
        port = free_port()
        cache = len(pool.tokens) // 2 if args.cold else 10_000
        extra = None
        redis = None
        if args.rate_limit:
            redis = services.start_redis(workdir)
            if isinstance(redis, str):
                print(redis, file=sys.stderr)
                return 1
            extra = {"rate_limit": fixtures.rate_limit_section(f"redis://127.0.0.1:{redis[1]}/0")}
            bodies = fixtures.rate_limit_bodies()
            path, name = messages.RATE_LIMIT_PATH, "rate-limit"
        else:
            bodies = fixtures.check_bodies(pool)
            path, name = messages.CHECK_PATH, "check-cold" if args.cold else "check"
        frames = fixtures.write_frames(workdir / "requests.bin", bodies)
        http_port = free_port()
        if args.http:
            extra = {**(extra or {}), **fixtures.http_check_section(http_port)}
            name += "-http"
        config = fixtures.service_config(
            workdir / "authz.yaml",
            port=port,
            jwks_uri=idp.jwks_uri,
            token_cache_max_entries=cache,
            extra=extra,
        )
        service = services.start_service(config, port, workdir, "authz-profile")
        try:
            if args.rate_limit:
                problem = services.rate_limit_served(port, bodies[0])
                if problem is not None:
                    raise RuntimeError(problem)
            else:
                services.expect_allowed(port, bodies)
            if args.http:
                tokens_file = workdir / "tokens.txt"
                tokens_file.write_text("\n".join(pool.tokens) + "\n")
                if not args.cold:
                    load.run_h2grpc(
                        binary,
                        ports=[port],
                        path=path,
                        data=frames,
                        conns=4,
                        streams=4,
                        requests=len(pool.tokens),
                    )
                loader = threading.Thread(
                    target=load.run_wrk,
                    kwargs={
                        "url": f"http://127.0.0.1:{http_port}/envoy{messages.REQUEST_PATH}",
                        "tokens_file": tokens_file,
                        "conns": 32,
                        "duration": 2 * args.seconds + 4,
                    },
                )
            else:
                loader = threading.Thread(
                    target=load.run_h2grpc,
                    kwargs={
                        "binary": binary,
                        "ports": [port],
                        "path": path,
                        "data": frames,
                        "conns": 16,
                        "streams": 8,
                        "duration": 2 * args.seconds + 4,
                    },
                )
            loader.start()
            RESULTS.mkdir(exist_ok=True)
            record = [py_spy, "record", "--pid", str(service.popen.pid), "--rate", "250"]
            record += ["--duration", str(round(args.seconds)), "--nonblocking"]
            collapsed = workdir / "profile.txt"
            svg = RESULTS / f"{name}-profile.svg"
            subprocess.run([*record, "--format", "raw", "-o", str(collapsed)], check=True)
            subprocess.run([*record, "-o", str(svg)], check=True)
            loader.join()
            print(summarise(collapsed))
            print(f"flame graph: {svg}")
        finally:
            service.stop()
            if redis is not None:
                redis[0].stop()
            idp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
