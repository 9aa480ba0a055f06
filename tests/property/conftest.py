"""The real servicers, in-process, on one event loop per module, for hypothesis to drive.

Hypothesis examples run synchronously (no function-scoped async fixtures inside @given), so
each module gets a private event loop and the tests call `loop.run_until_complete(...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import grpc
import pytest
import yaml

from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.config.loader import load_config_file
from authz_service.services.compiled_config import CompiledConfig, QuotaStoreHolder, compile_config
from tests.support.idp import running_idp
from tools.dev_idp import DevIdentityProvider
from tools.processes import REPO_ROOT, write_service_config

LOCAL_CONFIG = REPO_ROOT / "config" / "local.yaml"


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code


@dataclass
class FakeContext:
    """The part of grpc.aio.ServicerContext the servicers use."""

    metadata: Sequence[tuple[str, str]] = ()
    aborts: list[grpc.StatusCode] = field(default_factory=list)

    def invocation_metadata(self) -> Sequence[tuple[str, str]]:
        return self.metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        self.aborts.append(code)
        raise Aborted(code, details)

    def set_code(self, code: Any) -> None:
        pass

    def set_details(self, details: str) -> None:
        pass


@dataclass
class LocalService:
    loop: asyncio.AbstractEventLoop
    compiled_config: CompiledConfig
    idp: DevIdentityProvider
    config: dict[str, Any]

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)


@contextlib.contextmanager
def running_local_service(
    workdir: Path, edit: Callable[[dict[str, Any]], None] | None = None
) -> Iterator[LocalService]:
    """config/local.yaml (its policies, keys, limits) changed by `edit`, its JWKS served by a
    dev IdP."""
    loop = asyncio.new_event_loop()
    with running_idp() as idp:
        path = write_service_config(
            LOCAL_CONFIG, workdir / "authz.yaml", listen_port=0, jwks_uri=idp.jwks_uri
        )
        document = yaml.safe_load(path.read_text())
        # Random source addresses would lock each other out; lockout has its own tests.
        document["rate_limit"]["brute_force"] = {"enabled": False}
        document["telemetry"]["audit"] = {"enabled": False}
        if edit is not None:
            edit(document)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        registry = JwksRegistry()
        compiled = compile_config(load_config_file(path), registry, QuotaStoreHolder())
        try:
            yield LocalService(loop, compiled, idp, document)
        finally:
            loop.run_until_complete(registry.close())
            if compiled.limiter is not None:
                loop.run_until_complete(compiled.limiter.close())
            loop.close()


@pytest.fixture(scope="module")
def local_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    """config/local.yaml as shipped."""
    with running_local_service(tmp_path_factory.mktemp("property")) as service:
        yield service
