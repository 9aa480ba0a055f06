"""An async JWKS cache per provider.

- Keys are fetched in the background (periodic refresh) and never on the request path,
  except for one single-flight refetch when a token names an unknown `kid`, at most once per
  `min_refetch_interval_s` whatever the request rate (unlike PyJWKClient).
- Keys already known are kept and used while the endpoint is down, slow or serving garbage.
- Every fetch is bounded by `fetch_timeout_s` and a response size cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from authz_service.errors import TransientError
from authz_service.schema import JwksSettings
from authz_service.telemetry import tracing

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class JwksFetchError(TransientError):
    """The JWKS (or the discovery document) could not be fetched or used; the keys held stay."""

    reason = "unknown_key"
    outcome = "unauthenticated"


@dataclass(frozen=True, slots=True)
class JwksState:
    """What operators see about a provider's keys (admin status, metrics)."""

    key_ids: tuple[str, ...]
    last_refresh: float | None
    last_failure: float | None
    last_error: str


def parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """Usable signing keys by kid; keys that are malformed or not for signing are skipped."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JwksFetchError("not a JWK set: expected an object with a 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for index, entry in enumerate(document["keys"]):
        if not isinstance(entry, Mapping):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        # Private keys have no place in a published JWKS; refuse to load one as a public key.
        if any(part in entry for part in ("d", "p", "q", "k")):
            log.warning("jwks: skipping key %s: it carries private or symmetric material", index)
            continue
        try:
            key = jwt.PyJWK(dict(entry))
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as error:
            log.warning("jwks: skipping key %s: %s", index, error)
            continue
        kid = str(entry.get("kid", ""))
        keys[kid] = key
    return keys


class JwksCache:
    def __init__(
        self,
        uri_or_discovery: str,
        settings: JwksSettings,
        *,
        discovery_issuer: str | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Clock = time.monotonic,
        name: str = "",
    ) -> None:
        """`uri_or_discovery` is the jwks_uri; with `discovery_issuer` it is found via OIDC."""
        self._jwks_uri: str | None = None if discovery_issuer else uri_or_discovery
        self._discovery_issuer = discovery_issuer
        # The provider(s) this key set serves, for log lines an operator can act on.
        self.name = name
        self._settings = settings
        self._client = client
        self._own_client = client is None
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_refresh: float | None = None
        self._last_failure: float | None = None
        self._last_attempt: float | None = None
        self._last_error = ""
        self._inflight: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.fetch_count = 0
        self.failure_count = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Begin fetching in the background; the first fetch starts at once."""
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def close(self) -> None:
        for task in (self._refresher, self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._refresher = self._inflight = None
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- lookups ---------------------------------------------------------------------------

    @property
    def source_url(self) -> str:
        """Where keys come from: the jwks_uri, or the issuer's OIDC discovery document."""
        if self._jwks_uri is not None:
            return self._jwks_uri
        return f"{self._discovery_issuer}/.well-known/openid-configuration (discovery)"

    @property
    def keys(self) -> Mapping[str, jwt.PyJWK]:
        return self._keys

    def state(self) -> JwksState:
        return JwksState(
            key_ids=tuple(sorted(self._keys)),
            last_refresh=self._last_refresh,
            last_failure=self._last_failure,
            last_error=self._last_error,
        )

    async def get_key(self, kid: str) -> jwt.PyJWK | None:
        """The key for `kid`; an unknown kid triggers at most one rate-limited refetch."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        await self.refetch_if_allowed()
        return self._keys.get(kid)

    async def refetch_if_allowed(self) -> None:
        """Single-flight refetch, skipped when the last attempt was too recent."""
        if self._inflight is None:
            now = self._clock()
            if (
                self._last_attempt is not None
                and now - self._last_attempt < self._settings.min_refetch_interval_s
            ):
                return
            self._inflight = asyncio.get_running_loop().create_task(self._fetch_and_store())
        # Shield: a caller that gives up (deadline) must not cancel the shared fetch.
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.shield(self._inflight), self._settings.fetch_timeout_s + 0.1
            )

    # -- fetching --------------------------------------------------------------------------

    async def _refresh_forever(self) -> None:
        failures = 0
        while True:
            if self._inflight is None:
                self._inflight = asyncio.get_running_loop().create_task(self._fetch_and_store())
            with contextlib.suppress(Exception):
                await asyncio.shield(self._inflight)
            if self._last_failure is not None and (
                self._last_refresh is None or self._last_failure > self._last_refresh
            ):
                failures += 1
                # Retry sooner after a failure, backing off, never slower than the refresh.
                delay = min(self._settings.refresh_interval_s, 0.5 * 2 ** min(failures, 8))
            else:
                failures = 0
                delay = self._settings.refresh_interval_s
            await asyncio.sleep(delay)

    async def _fetch_and_store(self) -> None:
        self._last_attempt = self._clock()
        self.fetch_count += 1
        try:
            with tracing.child_span("jwks.fetch") as span:
                uri = await self._resolve_jwks_uri()
                if span.is_recording():
                    span.set_attribute("url.full", uri)
                document = await self._get_json(uri)
                keys = parse_jwks(document)
                if not keys:
                    raise JwksFetchError("the JWK set holds no usable signing key")
        except Exception as error:  # never let a fetch failure escape into requests
            self.failure_count += 1
            self._last_failure = self._clock()
            self._last_error = _describe(error)
            log.warning(
                "jwks fetch for provider %s from %s failed (keeping %d cached keys): %s",
                self.name or "?",
                self.source_url,
                len(self._keys),
                self._last_error,
            )
        else:
            self._keys = keys  # atomic swap
            self._last_refresh = self._clock()
            self._last_error = ""
        finally:
            self._inflight = None

    async def _resolve_jwks_uri(self) -> str:
        if self._jwks_uri is not None:
            return self._jwks_uri
        assert self._discovery_issuer is not None
        url = self._discovery_issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._get_json(url)
        if not isinstance(document, Mapping):
            raise JwksFetchError(f"{url}: discovery document is not an object")
        if document.get("issuer") != self._discovery_issuer:
            raise JwksFetchError(
                f"{url}: discovery names issuer {document.get('issuer')!r}, "
                f"expected {self._discovery_issuer!r}"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise JwksFetchError(f"{url}: discovery document has no usable jwks_uri")
        self._jwks_uri = jwks_uri
        return jwks_uri

    async def _get_json(self, url: str) -> Any:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        timeout = self._settings.fetch_timeout_s
        limit = self._settings.max_response_bytes
        async with asyncio.timeout(timeout):
            async with self._client.stream("GET", url, timeout=timeout) as response:
                if response.status_code != 200:
                    raise JwksFetchError(f"{url}: HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > limit:
                        raise JwksFetchError(f"{url}: response larger than {limit} bytes")
        try:
            return json.loads(body)
        except ValueError as error:
            raise JwksFetchError(f"{url}: not JSON: {error}") from None


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__
