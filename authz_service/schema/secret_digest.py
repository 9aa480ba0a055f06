"""Secrets as configs hold them: "sha256:<hex>" of the value, never the value itself.

One definition for API keys, the admin token and the metrics token, and for
`authz-service hash-key` that computes what goes in the config.
"""

from __future__ import annotations

import hashlib
import hmac


def secret_digest(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def bearer_matches(authorization: str, expected_digest: str) -> bool:
    """Whether an `Authorization: Bearer <token>` value carries the token of this digest."""
    token = authorization[7:] if authorization[:7].lower() == "bearer " else ""
    return bool(token) and hmac.compare_digest(secret_digest(token), expected_digest)
