"""A DEVELOPMENT-ONLY identity provider: an RSA signing key, a JWKS over HTTP, token minting.

It stands in for the central auth server (Keycloak in docker-compose) in the local stack and
in tests. authz_service itself never issues tokens. Never use these keys outside a laptop.

    python -m tools.dev_idp mint --sub alice --roles admin,reader   # prints a demo token
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

DEFAULT_ISSUER = "https://idp.dev.local/realms/demo"
DEFAULT_AUDIENCE = "demo-api"
STATE_DIR = Path(".stack")


@dataclass
class SigningKey:
    kid: str
    private_key: Any
    alg: str = "RS256"

    def public_jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg.startswith(("RS", "PS")) else ECAlgorithm
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private_key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg=self.alg)
        return jwk

    def pem(self) -> bytes:
        return self.private_key.private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def new_rsa_key(kid: str | None = None) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(kid or uuid.uuid4().hex[:12], key, "RS256")


def new_ec_key(kid: str | None = None) -> SigningKey:
    return SigningKey(
        kid or uuid.uuid4().hex[:12], ec.generate_private_key(ec.SECP256R1()), "ES256"
    )


@dataclass
class DevIdentityProvider:
    """Serves `/jwks.json` and OIDC discovery; its behaviour can be changed by tests."""

    issuer: str = DEFAULT_ISSUER
    audience: str = DEFAULT_AUDIENCE
    keys: list[SigningKey] = field(default_factory=lambda: [new_rsa_key()])
    # Test controls: serve this status / body instead, or sleep before answering.
    fail_status: int | None = None
    garbage_body: bytes | None = None
    delay_s: float = 0.0
    requests: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def signing_key(self) -> SigningKey:
        return self.keys[0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    def rotate(self) -> SigningKey:
        """A new signing key first in line; the old ones stay published (as IdPs do)."""
        key = new_rsa_key()
        self.keys.insert(0, key)
        return key

    def mint(
        self,
        subject: str = "alice",
        *,
        roles: list[str] | None = None,
        scope: str | None = None,
        lifetime_s: int = 300,
        key: SigningKey | None = None,
        extra_claims: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime_s,
            "jti": uuid.uuid4().hex,
            "realm_access": {"roles": roles or []},
        }
        if scope is not None:
            claims["scope"] = scope
        claims.update(extra_claims or {})
        signer = key or self.signing_key
        return jwt.encode(
            claims,
            signer.private_key,
            algorithm=signer.alg,
            headers={"kid": signer.kid, **(headers or {})},
        )

    # -- HTTP ------------------------------------------------------------------------------

    def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                idp.requests += 1
                # A hang that ends early when delay_s is set back to 0 (tests release it).
                started = time.monotonic()
                while idp.delay_s and time.monotonic() - started < idp.delay_s:
                    time.sleep(0.01)
                if idp.fail_status is not None:
                    self._send(idp.fail_status, b'{"error":"unavailable"}')
                elif self.path == "/.well-known/openid-configuration":
                    document = {
                        "issuer": idp.issuer,
                        "jwks_uri": f"http://{host}:{idp.port}/jwks.json",
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                    self._send(200, json.dumps(document).encode())
                elif self.path == "/jwks.json":
                    body = (
                        idp.garbage_body
                        if idp.garbage_body is not None
                        else json.dumps(idp.jwks()).encode()
                    )
                    self._send(200, body)
                else:
                    self._send(404, b"{}")

            def _send(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.daemon_threads = True
        self._server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() returns in 50 ms, not 500
            name="dev-idp",
            daemon=True,
        ).start()
        return self.port

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def jwks_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- persistence for the local stack ---------------------------------------------------

    def save(self, directory: Path = STATE_DIR) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "dev-signing-key.pem"
        path.write_bytes(self.signing_key.pem())
        path.chmod(0o600)
        (directory / "dev-signing-key.kid").write_text(self.signing_key.kid)

    @classmethod
    def load(cls, directory: Path = STATE_DIR, **kwargs: Any) -> DevIdentityProvider:
        pem = (directory / "dev-signing-key.pem").read_bytes()
        kid = (directory / "dev-signing-key.kid").read_text().strip()
        key = serialization.load_pem_private_key(pem, password=None)
        return cls(keys=[SigningKey(kid, key)], **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="DEVELOPMENT-ONLY token minting for the local stack"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    mint = commands.add_parser(
        "mint", help="print a demo token signed with the local stack's dev key"
    )
    mint.add_argument("--sub", default="alice")
    mint.add_argument("--roles", default="", help="comma-separated realm roles")
    mint.add_argument("--scope", default=None)
    mint.add_argument("--tier", default=None)
    mint.add_argument("--lifetime", type=int, default=600)
    args = parser.parse_args()
    idp = DevIdentityProvider.load()
    extra = {"tier": args.tier} if args.tier else {}
    roles = [role for role in args.roles.split(",") if role]
    print(
        idp.mint(
            args.sub, roles=roles, scope=args.scope, lifetime_s=args.lifetime, extra_claims=extra
        )
    )


if __name__ == "__main__":
    main()
