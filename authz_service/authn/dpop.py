"""DPoP proofs (RFC 9449): a token bound to a key (`cnf.jkt`) is accepted only with a proof,
signed by that key, for this very request, used once.

The proof is a JWT of `typ: dpop+jwt` carrying its public key (`jwk`) in the header. It is
checked for: an asymmetric algorithm the provider allows, a public key only, a signature by
that key, `htm` and `htu` matching the request as the client sent it (scheme, host, path; the
query and fragment are ignored, RFC 9449 4.3), `iat` within the window, `ath` = the hash of the
access token presented, the key's RFC 7638 thumbprint equal to the token's `cnf.jkt`, and a
`jti` never seen before. The `jti` is recorded in the quota store (Redis: every replica sees
it) for as long as the proof could be accepted; only a hash of thumbprint and `jti` is stored.
No proof, key or token ever leaves this module in a message: failures name the check.

    verifier = DpopVerifier(settings_by_issuer, store)
    result = verifier.verify(proof, method=..., url=..., access_token=..., jkt=..., now=...)
    verdict = await verifier.record(result, now)       # replay: first use or not
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from authz_service.authn.dpop_nonce import DpopNonces
from authz_service.errors import CredentialError
from authz_service.ratelimit.store import Hit, QuotaStore, StoreUnavailable
from authz_service.schema import DpopSettings, JwtProvider

KEY_PREFIX = "dpop:"
PROOF_TYPE = "dpop+jwt"
# RFC 7638 3.2: the members of each key type that its thumbprint is computed over.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
# Members that only a private key has: a proof carrying one leaks its key (refused).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MAX_PROOF_BYTES = 4096


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK (raises ValueError for an unknown type)."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(name), str) for name in members):
        raise ValueError("unsupported or incomplete jwk")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(token: str) -> str:
    """`ath`: base64url of the SHA-256 of the access token's ASCII (RFC 9449 4.2)."""
    return b64url(hashlib.sha256(token.encode("ascii", "replace")).digest())


def same_target(htu: str, url: str) -> bool:
    """Scheme, host (with port) and path equal, case-insensitive for scheme and host."""
    try:
        a, b = urlsplit(htu), urlsplit(url)
    except ValueError:
        return False
    return (a.scheme.lower(), a.netloc.lower(), a.path or "/") == (
        b.scheme.lower(),
        b.netloc.lower(),
        b.path or "/",
    )


class DpopError(CredentialError):
    """A proof that does not verify; the message names the failed check, never its content."""

    reason = "invalid_dpop_proof"


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    jkt: str
    jti: str
    iat: float
    nonce: str | None = None  # checked by the stage against the provider's DpopNonces


class DpopVerifier:
    def __init__(
        self,
        settings: Mapping[str, DpopSettings],
        store: QuotaStore | None,
        nonces: Mapping[str, DpopNonces] | None = None,
    ) -> None:
        """`settings`: issuer -> its provider's DPoP settings. `store`: where `jti`s are kept.
        `nonces`: issuer -> its server nonces, for providers with `dpop.nonce: required`."""
        self._settings = dict(settings)
        self._store = store
        self._nonces = dict(nonces or {})

    @classmethod
    def for_providers(
        cls, providers: Sequence[JwtProvider], store: QuotaStore | None
    ) -> DpopVerifier:
        """Every provider's settings; nonce keys are read here (config load and reload)."""
        nonces = {
            p.issuer: DpopNonces(
                p.dpop.resolved_nonce_secret(), lifetime_s=p.dpop.nonce_lifetime_s, issuer=p.issuer
            )
            for p in providers
            if p.dpop.nonce == "required"
        }
        return cls({p.issuer: p.dpop for p in providers}, store, nonces)

    def settings_for(self, issuer: str) -> DpopSettings | None:
        return self._settings.get(issuer)

    def nonces_for(self, issuer: str) -> DpopNonces | None:
        return self._nonces.get(issuer)

    def verify(
        self,
        proof: str,
        *,
        settings: DpopSettings,
        method: str,
        url: str,
        access_token: str,
        jkt: str,
        now: float,
    ) -> VerifiedProof:
        if len(proof) > MAX_PROOF_BYTES:
            raise DpopError("proof too large")
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.PyJWTError:
            raise DpopError("proof is not a JWT") from None
        if header.get("typ") != PROOF_TYPE:
            raise DpopError("proof typ is not dpop+jwt")
        algorithm = header.get("alg")
        if algorithm not in settings.algorithms:
            raise DpopError("proof algorithm not allowed")
        key = header.get("jwk")
        if not isinstance(key, dict) or _PRIVATE_MEMBERS.intersection(key):
            raise DpopError("proof jwk missing or not a public key")
        try:
            thumbprint = jwk_thumbprint(key)
            public_key = jwt.PyJWK(key, algorithm=algorithm)
            claims = jwt.decode(
                proof,
                public_key.key,
                algorithms=[algorithm],
                options={"verify_exp": False, "verify_iat": False, "verify_aud": False},
            )
        except (ValueError, jwt.PyJWTError):
            raise DpopError("proof signature does not verify") from None
        if thumbprint != jkt:
            raise DpopError("proof key is not the key the token is bound to")
        if claims.get("htm") != method:
            raise DpopError("proof htm does not match the request method")
        htu = claims.get("htu")
        if not isinstance(htu, str) or not same_target(htu, url):
            raise DpopError("proof htu does not match the request URL")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or not math.isfinite(iat):
            raise DpopError("proof lacks iat")
        if not now - settings.max_age_s - settings.leeway_s <= iat <= now + settings.leeway_s:
            raise DpopError("proof iat outside the accepted window")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise DpopError("proof lacks jti")
        if claims.get("ath") != access_token_hash(access_token):
            raise DpopError("proof ath does not match the access token")
        nonce = claims.get("nonce")
        nonce = nonce if isinstance(nonce, str) else None
        return VerifiedProof(jkt=thumbprint, jti=jti, iat=float(iat), nonce=nonce)

    async def first_use(
        self, proof: VerifiedProof, settings: DpopSettings, now: float, *, record: bool = True
    ) -> bool:
        """Whether this proof's `jti` is new (recording it unless `record` is False).
        Raises StoreUnavailable when the store cannot say."""
        if self._store is None:
            raise StoreUnavailable("no replay store")
        digest = hashlib.sha256(f"{proof.jkt}\0{proof.jti}".encode()).hexdigest()[:40]
        # Kept until the proof's iat has left the window: it could not be accepted after.
        period = max(1.0, proof.iat + settings.max_age_s + 2 * settings.leeway_s - now)
        hit = Hit(
            key=KEY_PREFIX + digest,
            algorithm="token_bucket",
            limit=1,
            window_s=period,
            hits=1 if record else 0,
            charge_rejected=False,
        )
        (verdict,) = await self._store.apply([hit], now)
        return verdict.allowed if record else verdict.remaining >= 1
