"""`serve --workers N`: N serving processes, one port each, under a small supervisor.

Envoy keeps one HTTP/2 connection per worker thread to a gRPC cluster, and SO_REUSEPORT
spreads connections (not requests) by the kernel's hash, so a shared port balances badly.
Listing one address per worker process in the Envoy cluster is deterministic: worker i
listens on the base port + i.

The supervisor forwards SIGHUP (reload) and SIGTERM/SIGINT (graceful stop) to every worker
and restarts a worker that dies unexpectedly, with a back-off so a crash loop stays cheap.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from authz_service.schema import split_listen

log = logging.getLogger(__name__)


def worker_addresses(listen: str, workers: int) -> list[str]:
    host, port = split_listen(listen)
    if port == 0 and workers > 1:
        raise ValueError("--workers needs a fixed base port, not 0")
    return [f"{host}:{port + index}" for index in range(workers)]


def _die_with_parent() -> None:
    """Linux: the worker gets SIGTERM if the supervisor dies, even by SIGKILL (no orphans)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


_PR_SET_PDEATHSIG = 1


@dataclass
class Worker:
    listen: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()


# The config setting behind each `serve` option, for error messages.
_SETTING_OF_OPTION = {
    "--admin-listen": "admin.listen",
    "--metrics-listen": "telemetry.metrics.listen",
    "--http-listen": "http_check.listen",
}


class Supervisor:
    def __init__(
        self,
        config: str,
        listen: str,
        workers: int,
        extra_args: Sequence[str] = (),
        other_ports: Mapping[str, str | None] | None = None,
    ) -> None:
        """Worker i listens on `listen`'s port + i, and so on every other port it opens:
        `other_ports` maps a `serve` option (e.g. "--admin-listen") to its base address."""
        bases = {option: base for option, base in (other_ports or {}).items() if base}
        per_option = {option: worker_addresses(base, workers) for option, base in bases.items()}
        self.workers = []
        for index, address in enumerate(worker_addresses(listen, workers)):
            argv = [sys.executable, "-m", "authz_service", "serve", "--config", config]
            argv += ["--listen", address, *extra_args]
            for option, addresses in per_option.items():
                argv += [option, addresses[index]]
            self.workers.append(Worker(address, argv))
        self._listens = [
            ("server.listen", address) for address in worker_addresses(listen, workers)
        ]
        self._listens += [
            (_SETTING_OF_OPTION.get(option, option), address)
            for option, addresses in per_option.items()
            for address in addresses
        ]
        self._stopping = threading.Event()

    def listens(self) -> list[tuple[str, str | None]]:
        """Every (setting, address) the workers will bind, to be checked before any starts."""
        return list(self._listens)

    def _signal_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signum)

    def _on_stop(self, signum: int, _frame: object) -> None:
        self._stopping.set()
        self._signal_all(signal.SIGTERM)

    def _on_reload(self, signum: int, _frame: object) -> None:
        self._signal_all(signal.SIGHUP)

    def run(self, grace_period_s: float = 10.0) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        for worker in self.workers:
            worker.start()
        log.info(
            "supervising %d workers on %s",
            len(self.workers),
            ", ".join(w.listen for w in self.workers),
        )
        while not self._stopping.wait(0.5):
            for worker in self.workers:
                assert worker.process is not None
                code = worker.process.poll()
                if code is None or self._stopping.is_set():
                    continue
                # Back off when a worker dies young: at most one restart per few seconds.
                young = time.monotonic() - worker.started_at < 5.0
                delay = min(30.0, 2.0 ** min(worker.restarts, 5)) if young else 0.0
                log.error(
                    "worker %s exited with %s; restarting in %.0fs", worker.listen, code, delay
                )
                if self._stopping.wait(delay):
                    break
                worker.restarts += 1
                worker.start()
        deadline = time.monotonic() + grace_period_s + 5.0
        status = 0
        for worker in self.workers:
            assert worker.process is not None
            try:
                code = worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                code = worker.process.wait()
            status = status or (code if code and code > 0 else 0)
        return status
