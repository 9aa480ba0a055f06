"""The config watch on a real file system: Kubernetes ConfigMap updates, again and again, and
the rate-limit files of `config_dir` (envoyproxy/ratelimit's layout) are picked up."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from authz_service.config.loader import LoadedConfig
from authz_service.config.reload import ConfigReloader
from tests.support.authz_config import open_policy
from tests.support.idp import wait_until


class ConfigMapMount:
    """A directory updated the way the kubelet updates a mounted ConfigMap: files are links
    through `..data`, which is swapped in one rename to a new timestamped folder, and the old
    folder is deleted."""

    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self.root = root
        self.root.mkdir()
        self._generation = 0
        self._write(files)
        for name in files:
            (self.root / name).symlink_to(Path("..data") / name)

    def update(self, files: dict[str, str]) -> None:
        old = os.readlink(self.root / "..data")
        self._write(files)
        for name in os.listdir(self.root / old):
            os.remove(self.root / old / name)
        os.rmdir(self.root / old)

    def _write(self, files: dict[str, str]) -> None:
        self._generation += 1
        folder = f"..2026_11_22_{self._generation:02d}"
        (self.root / folder).mkdir()
        for name, text in files.items():
            (self.root / folder / name).write_text(text)
        (self.root / "..data_tmp").symlink_to(folder)
        os.replace(self.root / "..data_tmp", self.root / "..data")


def config_text(**document: Any) -> str:
    return yaml.safe_dump({"policies": open_policy(), **document}, sort_keys=False)


def limits_text(requests_per_unit: int) -> str:
    return yaml.safe_dump(
        {
            "domain": "gateway",
            "descriptors": [
                {
                    "key": "user",
                    "rate_limit": {"unit": "minute", "requests_per_unit": requests_per_unit},
                }
            ],
        }
    )


Watch = Callable[[Path], ConfigReloader[LoadedConfig]]


@pytest.fixture
async def watched() -> AsyncIterator[Watch]:
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def watch(path: Path) -> ConfigReloader[LoadedConfig]:
        reloader: ConfigReloader[LoadedConfig] = ConfigReloader(path, lambda loaded: loaded)
        tasks.append(asyncio.create_task(reloader.watch(stop)))
        return reloader

    yield watch
    stop.set()
    await asyncio.gather(*tasks)


async def settle() -> None:
    """Let the watcher start before the first change (it only sees what happens after)."""
    await asyncio.sleep(0.3)


async def test_every_configmap_update_is_picked_up_not_only_the_first(
    tmp_path: Path, watched: Watch
) -> None:
    mount = ConfigMapMount(tmp_path / "config", {"authz.yaml": config_text()})
    reloader = watched(mount.root / "authz.yaml")
    await settle()

    for n in range(1, 4):
        mount.update({"authz.yaml": config_text(token_cache_max_entries=100 + n)})
        await wait_until(lambda n=n: reloader.status().reloads == n, within_s=5)
        assert reloader.current.config.token_cache_max_entries == 100 + n


async def test_a_changed_rate_limit_file_is_a_new_config(tmp_path: Path, watched: Watch) -> None:
    # As in deploy/kubernetes: the limits are a ConfigMap of their own, beside the config's.
    limits = ConfigMapMount(tmp_path / "limits", {"gateway.yaml": limits_text(10)})
    (tmp_path / "config").mkdir()
    config = tmp_path / "config" / "authz.yaml"
    config.write_text(config_text(rate_limit={"store": "memory", "config_dir": "../limits"}))
    reloader = watched(config)
    version = reloader.status().version
    await settle()

    limits.update({"gateway.yaml": limits_text(20)})

    await wait_until(lambda: reloader.status().reloads == 1, within_s=5)
    assert reloader.status().version != version


async def test_the_watch_follows_config_dir_when_a_reload_moves_it(
    tmp_path: Path, watched: Watch
) -> None:
    for name in ("limits-a", "limits-b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "gateway.yaml").write_text(limits_text(10))
    config = tmp_path / "authz.yaml"
    config.write_text(config_text(rate_limit={"store": "memory", "config_dir": "limits-a"}))
    reloader = watched(config)
    await settle()

    config.write_text(config_text(rate_limit={"store": "memory", "config_dir": "limits-b"}))
    await wait_until(lambda: reloader.status().reloads == 1, within_s=5)
    await settle()
    (tmp_path / "limits-b" / "gateway.yaml").write_text(limits_text(30))

    await wait_until(lambda: reloader.status().reloads == 2, within_s=5)
