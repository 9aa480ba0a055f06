"""Envoy in front of two authz_service replicas: a variant of envoy/envoy.yaml made in Python.

The shipped template is rendered as usual, then edited as YAML: the authz_service cluster gets
a second endpoint, and optionally a retry policy on the ext_authz gRPC call. Nothing is copied
by hand, so the variant follows every other change to the template.

Measured with the real Envoy 1.40 (4 clients, one replica stopped by SIGTERM): with neither a
drain delay nor a retry, 130-250 requests of ~1,200 were answered 503; the retry policy alone
made it lossless but turned slow Checks into ext_authz errors (docs/security.md); what ships
is the cluster's gRPC health checks plus the service's `server.drain_delay_s`, which the test
uses (retry=False): no request lost.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tools.dev_cert import generate as generate_dev_certs
from tools.processes import LISTENER_PORTS, Process, envoy_binary, free_port, spawn, wait_for_port
from tools.render_envoy import render

# What the ext_authz call would need so that losing one replica loses no request.
EXT_AUTHZ_RETRY: dict[str, Any] = {
    "retry_on": "connect-failure,refused-stream,reset,unavailable",
    "num_retries": 2,
    "retry_back_off": {"base_interval": "0.01s", "max_interval": "0.05s"},
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/"
                "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
            },
        }
    ],
    "host_selection_retry_max_attempts": 3,
}


def _filters(config: Mapping[str, Any], name: str) -> Iterator[dict[str, Any]]:
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                for http_filter in network_filter["typed_config"].get("http_filters", []):
                    if http_filter["name"] == name:
                        yield http_filter["typed_config"]


def two_replica_config(rendered: str, second_port: int, *, retry: bool) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(rendered)
    (cluster,) = [c for c in config["static_resources"]["clusters"] if c["name"] == "authz_service"]
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    second = copy.deepcopy(endpoints[0])
    second["endpoint"]["address"]["socket_address"]["port_value"] = second_port
    endpoints.append(second)
    if retry:
        ext_authz = list(_filters(config, "envoy.filters.http.ext_authz"))
        assert ext_authz, "no ext_authz filter in the template"
        for typed_config in ext_authz:
            typed_config["grpc_service"]["retry_policy"] = EXT_AUTHZ_RETRY
    return config


def start_two_replica_envoy(
    values: Mapping[str, object],
    second_port: int,
    workdir: Path,
    wait_ports: list[int],
    *,
    retry: bool = True,
) -> Process:
    binary = envoy_binary()
    assert binary is not None
    values = dict(values)
    for key in LISTENER_PORTS:
        values.setdefault(key, free_port())
    values.setdefault("TLS_DIR", generate_dev_certs(workdir / "tls"))
    config = two_replica_config(render(values), second_port, retry=retry)
    path = workdir / "envoy-two-replicas.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    process = spawn(
        "envoy",
        [binary, "-c", str(path), "--log-level", "warn", "--concurrency", "2",
         "--disable-hot-restart"],
        workdir,
    )  # fmt: skip
    for port in wait_ports:
        wait_for_port(port, process=process.popen)
    return process
