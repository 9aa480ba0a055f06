"""Read one value from a service's Prometheus /metrics page, and wait on it."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def metric_value(port: int, name: str, labels: dict[str, str]) -> float:
    """The sample `name{labels}` on 127.0.0.1:port/metrics; 0 when absent."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def wait_for_metric(
    port: int, name: str, labels: dict[str, str], value: float, within_s: float = 30.0
) -> None:
    """Poll until the sample equals `value`: the condition itself, not a guessed delay."""
    async with asyncio.timeout(within_s):
        while await metric_value(port, name, labels) != value:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
