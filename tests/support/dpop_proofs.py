"""DPoP proofs for tests (RFC 9449): a client key pair and proofs it signs."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from authz_service.authn.dpop import access_token_hash, jwk_thumbprint


@dataclass
class DpopClient:
    """A client key; `proof(...)` signs a proof, every claim overridable to make a bad one."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        return jwk

    @property
    def jkt(self) -> str:
        return jwk_thumbprint(self.public_jwk)

    def proof(
        self,
        method: str,
        url: str,
        access_token: str | None,
        *,
        iat: float | None = None,
        jti: str | None = None,
        typ: str = "dpop+jwt",
        jwk: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        body: dict[str, Any] = {
            "htm": method,
            "htu": url,
            "iat": int(time.time() if iat is None else iat),
            "jti": jti or uuid.uuid4().hex,
        }
        if access_token is not None:  # None: a proof for the token endpoint, before any token
            body["ath"] = access_token_hash(access_token)
        body.update(claims)
        headers = {"typ": typ, "jwk": jwk if jwk is not None else self.public_jwk}
        return jwt.encode(body, self.key, algorithm="ES256", headers=headers)
