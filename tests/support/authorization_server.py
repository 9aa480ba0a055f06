"""A real authorization server for tests: oidc-provider (npm) run by Node on 127.0.0.1.

Its JavaScript is tests/support/oidc_issuer/issuer.mjs (which clients and grants it has, and
why); `scripts/setup-test-issuer.sh` installs its npm packages. Use the session fixture by
importing it into a conftest.py:

    from tests.support.authorization_server import authorization_server  # noqa: F401

and ask it for tokens: `token("service")` (a Bearer JWT), `token("dpop-client", dpop=client)`
(cnf.jkt), `token("mtls-client", certificate=cert)` (cnf.x5t#S256),
`token("service", resource=OPAQUE_AUDIENCE)` (opaque, see `introspect` and `revoke`),
`user_token("alice", acr=..., auth_time=...)` (step-up claims).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509

from tests.support import REPO_ROOT, REQUIRE_ALL, find_binary
from tests.support.client_certs import pem
from tests.support.dpop_proofs import DpopClient

ISSUER_DIR = REPO_ROOT / "tests" / "support" / "oidc_issuer"
AUDIENCE = "https://api.authz-service.test"
OPAQUE_AUDIENCE = "https://opaque.authz-service.test"
SCOPE = "orders:read orders:write"
LOGIN_GRANT = "urn:authz-service:test:login"
# The client that stands for a resource server (authz_service) at the introspection endpoint.
RESOURCE_SERVER_CLIENT = "resource-server"


def client_secret(client_id: str) -> str:
    """Every test client's secret (issuer.mjs): test-only, never a real credential."""
    return f"{client_id}-secret"


class TokenRequestRefused(Exception):
    """The issuer answered a token, introspection or revocation request with an error."""


class NonceRequired(TokenRequestRefused):
    """The issuer asked for a DPoP proof carrying its nonce (`use_dpop_nonce`)."""

    def __init__(self, nonce: str) -> None:
        super().__init__("use_dpop_nonce")
        self.nonce = nonce


@dataclass
class AuthorizationServer:
    issuer: str
    discovery: dict[str, Any]
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def jwks_uri(self) -> str:
        return str(self.discovery["jwks_uri"])

    @property
    def token_endpoint(self) -> str:
        return str(self.discovery["token_endpoint"])

    @property
    def introspection_endpoint(self) -> str:
        return str(self.discovery["introspection_endpoint"])

    @property
    def revocation_endpoint(self) -> str:
        return str(self.discovery["revocation_endpoint"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def token(
        self,
        client_id: str,
        *,
        resource: str = AUDIENCE,
        scope: str | None = None,
        dpop: DpopClient | None = None,
        certificate: x509.Certificate | None = None,
    ) -> str:
        """An access token by the client_credentials grant; `dpop` binds it to that key
        (a proof goes to the token endpoint), `certificate` to that client certificate."""
        form = {"grant_type": "client_credentials", "resource": resource}
        if scope is not None:
            form["scope"] = scope
        headers = {}
        if certificate is not None:  # as a TLS-terminating proxy forwards it (issuer.mjs)
            headers["x-client-cert"] = quote(pem(certificate))
        if dpop is None:
            return self._access_token(client_id, form, headers)
        headers["dpop"] = dpop.proof("POST", self.token_endpoint, None)
        try:
            return self._access_token(client_id, form, headers)
        except NonceRequired as asked:  # RFC 9449 8: sign again with the issuer's nonce
            headers["dpop"] = dpop.proof("POST", self.token_endpoint, None, nonce=asked.nonce)
            return self._access_token(client_id, form, headers)

    def user_token(
        self,
        username: str,
        *,
        acr: str | None = None,
        auth_time: float | None = None,
        resource: str = AUDIENCE,
        client_id: str = "service",
    ) -> str:
        """A user's access token saying how (`acr`) and when (`auth_time`, default now) the
        user signed in: the facts a step-up rule (RFC 9470) judges."""
        form = {"grant_type": LOGIN_GRANT, "username": username, "resource": resource}
        if acr is not None:
            form["acr"] = acr
        if auth_time is not None:
            form["auth_time"] = str(int(auth_time))
        return self._access_token(client_id, form, {})

    def introspect(self, token: str, client_id: str = RESOURCE_SERVER_CLIENT) -> dict[str, Any]:
        answer = self._post(self.introspection_endpoint, client_id, {"token": token}, {})
        result: dict[str, Any] = answer.json()
        return result

    def revoke(self, token: str, client_id: str = "service") -> None:
        self._post(self.revocation_endpoint, client_id, {"token": token}, {})

    def _access_token(self, client_id: str, form: dict[str, str], headers: dict[str, str]) -> str:
        answer = self._post(self.token_endpoint, client_id, form, headers)
        return str(answer.json()["access_token"])

    def _post(
        self, url: str, client_id: str, form: dict[str, str], headers: dict[str, str]
    ) -> httpx.Response:
        auth = (client_id, client_secret(client_id))
        answer = httpx.post(url, data=form, headers=headers, auth=auth, timeout=10.0)
        if answer.status_code == 400 and "dpop-nonce" in answer.headers:
            raise NonceRequired(answer.headers["dpop-nonce"])
        if answer.status_code != 200:
            raise TokenRequestRefused(f"{url}: {answer.status_code} {answer.text}")
        return answer


def _require_installed() -> str:
    """The node binary; fail (AUTHZ_TESTS_REQUIRE_ALL=1) or skip without it or the packages."""
    node = find_binary("node")
    if not (ISSUER_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        message = "the test issuer's npm packages are missing: run scripts/setup-test-issuer.sh"
        if REQUIRE_ALL:
            pytest.fail(message + " (AUTHZ_TESTS_REQUIRE_ALL=1 turns this skip into a failure)")
        pytest.skip(message)
    return node


def _announced_issuer(log_path: Path, process: subprocess.Popen[bytes], within_s: float) -> str:
    """The issuer URL issuer.mjs prints once it listens (among the library's warnings)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith('{"issuer"'):
                return str(json.loads(line)["issuer"])
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the test issuer did not start:\n{log_path.read_text(errors='replace')}")


def _discovery(issuer: str, within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    url = issuer + "/.well-known/openid-configuration"
    while True:
        try:
            answer = httpx.get(url, timeout=1.0)
            if answer.status_code == 200:
                document: dict[str, Any] = answer.json()
                return document
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {within_s}s")
        time.sleep(0.05)


@contextlib.contextmanager
def running_authorization_server(
    workdir: Path, *, dpop_nonce: bool = False, token_ttl_s: int = 300
) -> Iterator[AuthorizationServer]:
    """Start issuer.mjs; stop it when the block ends. `dpop_nonce` makes the issuer demand a
    server nonce in DPoP proofs at its token endpoint."""
    node = _require_installed()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "issuer.log"
    command = [node, str(ISSUER_DIR / "issuer.mjs"), "--token-ttl", str(token_ttl_s)]
    if dpop_nonce:
        command.append("--dpop-nonce")
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ISSUER_DIR)
    try:
        issuer = _announced_issuer(log_path, process, within_s=20.0)
        yield AuthorizationServer(issuer, _discovery(issuer, 20.0), process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def authorization_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AuthorizationServer]:
    with running_authorization_server(tmp_path_factory.mktemp("issuer")) as server:
        yield server
