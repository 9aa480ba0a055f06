"""The names of the metrics the gateway's Envoy exposes on /stats/prometheus, from a real run.

Many Envoy stats exist only once something happened (an ext_authz denial, a rate-limited
request, a failed call to authz_service), so a scrape of an idle Envoy misses them. This
module starts the local stack of the end-to-end tests (Envoy rendered from envoy/envoy.yaml,
authz_service, the demo upstream, the development IdP), sends allowed, denied, rate-limited
and failing requests through it, scrapes the metrics listener and writes every sample name:

    python -m tests.observability_assets.envoy_metrics      # rewrites envoy_metric_names.txt

The alert rules and the dashboard may only use names from that list (see test_assets.py).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

NAMES_FILE = Path(__file__).with_name("envoy_metric_names.txt")


def sample_names(exposition: str) -> set[str]:
    """Every sample name (with _bucket/_sum/_count for histograms) of a Prometheus scrape."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            names.add(sample.name)
    return names


def read_names(path: Path = NAMES_FILE) -> set[str]:
    lines = path.read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def scrape_after_traffic(workdir: Path) -> str:
    # The end-to-end tests' stack; imported here so the asset tests need none of it.
    from tests.e2e.conftest import running_stack

    def lockout_and_small_limits(config: dict[str, object]) -> None:
        rate_limit = config["rate_limit"]
        assert isinstance(rate_limit, dict)
        rate_limit["brute_force"] = {"enabled": True, "max_failures": 3, "window": "1m"}

    with running_stack(workdir, edit_config=lockout_and_small_limits) as stack:
        token = stack.idp.mint("alice", roles=["reader"], extra_claims={"tier": "free"})
        bearer = {"authorization": f"Bearer {token}"}
        with stack.client() as client:
            client.get(stack.public_url + "/public/page")  # allowed, anonymous
            client.get(stack.public_url + "/admin/users", headers=bearer)  # 403
            for _ in range(12):  # the free tier's 10 a minute: the last ones are 429
                client.get(stack.public_url + "/api/orders", headers=bearer)
            for _ in range(5):  # bad tokens: 401, then the brute-force lockout (429)
                client.get(stack.public_url + "/api/orders", headers={"authorization": "Bearer x"})
        with httpx.Client(timeout=10.0) as client:
            client.get(stack.internal_url + "/internal/jobs")  # internal listener, 401
        stack.authz.stop()  # authz_service gone: ext_authz and ratelimit calls fail
        with stack.client() as client:
            client.get(stack.public_url + "/api/orders", headers=bearer)
        return httpx.get(stack.metrics_url + "/stats/prometheus", timeout=10.0).text


def main() -> int:
    with tempfile.TemporaryDirectory() as workdir:
        names = sample_names(scrape_after_traffic(Path(workdir)))
    header = (
        "# Envoy /stats/prometheus sample names of the gateway (envoy/envoy.yaml) after allowed,\n"
        "# denied, rate-limited and failing requests. Regenerate with:\n"
        "#   python -m tests.observability_assets.envoy_metrics\n"
    )
    NAMES_FILE.write_text(header + "".join(f"{name}\n" for name in sorted(names)))
    print(f"{len(names)} names written to {NAMES_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
