"""Config reload under load through the real Envoy: valid and invalid files alternating.

Two valid configs, A and B, agree on every request the load sends and differ only on a
probe path (`/open/page`: 403 under A, 200 under B), so every load request has one expected
answer whatever config is in force, and the probe tells which one is. Between them, invalid
files (bad YAML, an unknown key, a duplicate rule name) must be refused with the last good
config kept. Files are replaced atomically (as a Kubernetes ConfigMap update does) and SIGHUP
is sent too, so both reload paths run.
"""

from __future__ import annotations

import copy
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Stack, running_stack
from tests.faults.service import unlimited

pytestmark = pytest.mark.envoy

OPEN_RULE = {
    "name": "open-pages",
    "match": {"methods": ["GET"], "paths": [{"prefix": "/open/"}]},
    "allow": "anonymous",
}


def config_b(config_a: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config_a)
    config["policies"]["public"]["rules"].insert(0, OPEN_RULE)
    return config


INVALID_FILES: list[Callable[[str], str]] = [
    lambda text: text + "\npolicies: [this is: not valid yaml\n",
    lambda text: text.replace("policy_selection:", "policy_selektion:", 1),
    lambda text: text.replace("name: api-reads", "name: api-writes", 1),  # duplicate rule name
    lambda text: "",
    # A second `policy_selection:` mapping: YAML alone would let it silently win.
    lambda text: text + "\npolicy_selection: {default: internal}\n",
]


@pytest.fixture(scope="module")
def reload_stack(tmp_path_factory: pytest.TempPathFactory, envoy_available: str) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("reload"), edit_config=unlimited) as stack:
        yield stack


def replace_file(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


class Load:
    """Threads sending requests with fixed expectations; every mismatch is recorded."""

    def __init__(self, stack: Stack, cases: list[tuple[str, dict[str, str], int]]) -> None:
        self.stack = stack
        self.cases = cases
        self.stop = threading.Event()
        self.seen: Counter[tuple[str, int]] = Counter()
        self.wrong: list[tuple[str, int, int, str]] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(3)]

    def _run(self) -> None:
        with self.stack.client() as client:
            while not self.stop.is_set():
                for path, headers, expected in self.cases:
                    response = client.get(self.stack.public_url + path, headers=headers)
                    self.seen[(path, response.status_code)] += 1
                    if response.status_code != expected:
                        reason = response.headers.get("x-authz-reason", "")
                        self.wrong.append((path, expected, response.status_code, reason))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def probe(stack: Stack) -> int:
    with stack.client() as client:
        return client.get(stack.public_url + "/open/page").status_code


def wait_for_probe(stack: Stack, status: int, within_s: float = 3.0) -> None:
    deadline = time.monotonic() + within_s
    while probe(stack) != status:
        assert time.monotonic() < deadline, f"config with /open/ -> {status} not in force"
        time.sleep(0.05)


def wait_for_rejection(stack: Stack, before: int, within_s: float = 5.0) -> None:
    """Until the service has logged one more refused reload than `before`."""
    deadline = time.monotonic() + within_s
    while stack.authz.log().count("config reload rejected") <= before:
        assert time.monotonic() < deadline, "the invalid file was not refused"
        time.sleep(0.05)


def test_reloads_under_load_never_fail_or_misdecide_a_request(reload_stack: Stack) -> None:
    stack = reload_stack
    path = stack.config_path
    text_a = path.read_text()
    text_b = yaml.safe_dump(config_b(yaml.safe_load(text_a)), sort_keys=False)
    reader = {"authorization": f"Bearer {stack.idp.mint('bob', roles=['reader'], lifetime_s=600)}"}
    cases = [
        ("/api/orders", reader, 200),
        ("/admin/users", reader, 403),
        ("/api/orders", {}, 401),
        ("/public/docs", {}, 200),
        ("/reports/q1", reader, 403),
    ]
    rejected_before = stack.authz.log().count("config reload rejected")
    try:
        with Load(stack, cases) as load:
            time.sleep(0.5)
            for round_ in range(12):
                text, expected = (text_b, 200) if round_ % 2 == 0 else (text_a, 403)
                replace_file(path, text)
                stack.authz.popen.send_signal(signal.SIGHUP)
                wait_for_probe(stack, expected)
                refused = stack.authz.log().count("config reload rejected")
                replace_file(path, INVALID_FILES[round_ % len(INVALID_FILES)](text))
                stack.authz.popen.send_signal(signal.SIGHUP)
                wait_for_rejection(stack, refused)
                assert probe(stack) == expected  # the last good config stays in force
            time.sleep(0.3)
    finally:
        replace_file(path, text_a)
        stack.authz.popen.send_signal(signal.SIGHUP)

    assert stack.authz.popen.poll() is None
    assert load.wrong == [], load.wrong[:10]
    assert sum(load.seen.values()) > 300, load.seen
    assert not [key for key in load.seen if key[1] >= 500]
    rejected = stack.authz.log().count("config reload rejected") - rejected_before
    assert rejected >= 12, stack.authz.log()[-2000:]
