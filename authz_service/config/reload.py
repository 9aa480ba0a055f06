"""Hot reload: a new file is loaded and compiled aside, then swapped in one assignment.

A file that fails to load or compile is reported and the running config stays. Reloads come
from SIGHUP and from watching the file's directory and the rate-limit `config_dir` (whole
directories, so that the atomic `..data` symlink swap of a Kubernetes ConfigMap is seen).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from watchfiles import awatch

from authz_service.config.collector import collector_paused
from authz_service.config.loader import (
    ConfigError,
    LoadedConfig,
    included_directory,
    load_config_file,
)
from authz_service.config.reloadable import restart_required

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    version: str
    loaded_at: float
    last_error: str
    last_error_at: float | None
    reloads: int
    failures: int
    # Start-only settings the config in force changed: running with their old values.
    restart_required: tuple[str, ...] = ()


# While a reload parses and compiles in its worker thread, the interpreter hands the GIL back
# to the event loop this often (the default is 5 ms): a Check waiting for the GIL several
# times per call otherwise takes ~10 ms while a large policy reloads.
_RELOAD_SWITCH_INTERVAL_S = 0.0005


_switch_lock = threading.Lock()
_switch_holders = 0
_switch_previous = 0.005


@contextlib.contextmanager
def _requests_first() -> Iterator[None]:
    """The short switch interval for the block; reloads of several reloaders in one process
    (tests) overlap safely: the last one out restores the interval the first one found."""
    global _switch_holders, _switch_previous
    with _switch_lock:
        if _switch_holders == 0:
            _switch_previous = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_previous, _RELOAD_SWITCH_INTERVAL_S))
        _switch_holders += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_holders -= 1
            if _switch_holders == 0:
                sys.setswitchinterval(_switch_previous)


class ConfigReloader(Generic[T]):
    def __init__(
        self,
        path: str | Path,
        build: Callable[[LoadedConfig], T],
        after_swap: Callable[[T], Awaitable[None]] | None = None,
    ) -> None:
        """Load `path` now (raising ConfigError if it is bad) and keep the built result."""
        self.path = Path(path)
        # The directory as named, not resolved: resolving goes through a ConfigMap's `..data`
        # link into a folder that the next update deletes, and a watch on it would end there.
        self._home = Path(os.path.abspath(self.path)).parent
        self._build = build
        self._after_swap = after_swap
        loaded = load_config_file(self.path)
        self._current: T = build(loaded)
        self._started = loaded.config
        self._restart_required: tuple[str, ...] = ()
        self._digest = loaded.digest
        self._included = included_directory(loaded.config, self.path.parent)
        self._loaded_at = time.time()
        self._last_error = ""
        self._last_error_at: float | None = None
        self._reloads = 0
        self._failures = 0
        self._lock = asyncio.Lock()

    @property
    def current(self) -> T:
        return self._current

    def status(self) -> ReloadStatus:
        return ReloadStatus(
            version=self._digest[:12],
            loaded_at=self._loaded_at,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            reloads=self._reloads,
            failures=self._failures,
            restart_required=self._restart_required,
        )

    async def reload(self) -> bool:
        """Load the file again. True when a new config is in force."""
        async with self._lock:
            try:
                # Off the event loop: parsing and compiling must not stall requests.
                with _requests_first():
                    loaded = await asyncio.to_thread(load_config_file, self.path)
                if loaded.digest == self._digest:
                    # The running version again (e.g. a bad edit reverted): nothing is wrong.
                    self._last_error = ""
                    return False
                with _requests_first():
                    built = await asyncio.to_thread(self._build_paused, loaded)
            except ConfigError as error:
                return self._failed(str(error))
            except Exception as error:  # a bug in compiling must not take the old config
                log.exception("config reload failed while compiling")
                return self._failed(f"{self.path}: {type(error).__name__}: {error}")
            previous = self._digest[:12]
            self._current = built
            self._digest = loaded.digest
            self._included = included_directory(loaded.config, self.path.parent)
            self._loaded_at = time.time()
            self._last_error = ""
            self._reloads += 1
            self._restart_required = tuple(restart_required(self._started, loaded.config))
            log.info(
                "config reloaded from %s: version %s -> %s (%d policies, %d JWT providers)",
                self.path,
                previous,
                self._digest[:12],
                len(loaded.config.policies),
                len(loaded.config.jwt_providers),
            )
            if self._restart_required:
                log.warning(
                    "config version %s: restart needed to apply: %s (running with the values "
                    "read at start)",
                    self._digest[:12],
                    ", ".join(self._restart_required),
                )
        if self._after_swap is not None:
            await self._after_swap(built)
        return True

    def _build_paused(self, loaded: LoadedConfig) -> T:
        # Compiling (and the rate-limit files it reads) allocates as much as loading does.
        with collector_paused():
            return self._build(loaded)

    def _failed(self, message: str) -> bool:
        self._last_error = message
        self._last_error_at = time.time()
        self._failures += 1
        log.error("config reload rejected, keeping version %s:\n%s", self._digest[:12], message)
        return False

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload whenever the file, the directory entry pointing at it, or a file of the
        rate-limit `config_dir` changes; a reload that moves `config_dir` moves the watch."""
        home = self._home
        while not stop.is_set():
            included = self._included
            watched = {home} if included is None else {home, included}
            async for changes in awatch(
                *sorted(watched), stop_event=stop, debounce=200, step=50, recursive=True
            ):
                if any(self._concerns_us(Path(changed), home, included) for _, changed in changes):
                    await self.reload()
                if self._included != included:
                    break

    def _concerns_us(self, changed: Path, home: Path, included: Path | None) -> bool:
        if included is not None and changed.is_relative_to(included):
            return True  # a limits file, or that directory's own ConfigMap swap
        # ConfigMaps swap a "..data" symlink: any such change in the directory may be ours.
        return changed.parent == home and (
            changed.name == self.path.name or changed.name.startswith("..")
        )
