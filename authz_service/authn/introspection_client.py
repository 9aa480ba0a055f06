"""One RFC 7662 introspection call: POST the token to the issuer's endpoint, authenticated
as our client, and read back its JSON answer.

Bounded: a connect timeout and a total timeout (waiting for a free slot included), at most
`max_concurrent` calls in flight, a response size cap. Anything but a 200 with a JSON object
carrying a boolean `active` raises `IntrospectionUnavailable`: the issuer did not say, so
the caller answers 503 and never allows. The token never appears in an error or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import quote

import aiohttp

from authz_service.errors import TransientError
from authz_service.schema import IntrospectionProvider


class IntrospectionUnavailable(TransientError):
    """The introspection endpoint did not answer usably: down, slow, 5xx, not JSON, no
    `active`. The token may be good: 503, never an allow."""

    reason = "introspection_unavailable"
    outcome = "unavailable"


def _form_encoded(value: str) -> str:
    # RFC 6749 2.3.1: client_id and secret are form-urlencoded before Basic encoding.
    return quote(value, safe="").replace("%20", "+")


class IntrospectionClient:
    def __init__(self, provider: IntrospectionProvider) -> None:
        self._provider = provider
        self._secret = provider.resolved_secret()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(provider.max_concurrent)
        self._timeout = aiohttp.ClientTimeout(
            total=provider.timeout_s, connect=provider.connect_timeout_s
        )
        self.calls = 0

    def _bind_to_running_loop(self) -> None:
        """Connections and the slot semaphore belong to one event loop: a caller on another
        (an offline tool running one loop per command) gets fresh ones."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._session = None
            self._slots = asyncio.Semaphore(self._provider.max_concurrent)

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use, inside the serving event loop. aiohttp's client, not httpx:
        # an introspection call is on the request path, and httpx spent ~5x the CPU here.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._provider.max_concurrent),
                timeout=self._timeout,
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        # A session of another loop (gone with it) is only dropped.
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None

    def _request_parts(self, token: str) -> tuple[dict[str, str], dict[str, str]]:
        provider = self._provider
        form = {"token": token}
        if provider.token_type_hint:
            form["token_type_hint"] = provider.token_type_hint
        headers = {"accept": "application/json"}
        if provider.client_auth == "client_secret_basic":
            pair = f"{_form_encoded(provider.client_id)}:{_form_encoded(self._secret)}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = provider.client_id
            form["client_secret"] = self._secret
        return form, headers

    async def introspect(self, token: str) -> dict[str, Any]:
        """The endpoint's answer for `token`: a JSON object whose `active` is a boolean."""
        provider = self._provider
        form, headers = self._request_parts(token)
        self._bind_to_running_loop()
        try:
            async with asyncio.timeout(provider.timeout_s):
                async with self._slots:
                    self.calls += 1
                    body = await self._post(form, headers)
        except TimeoutError:
            raise IntrospectionUnavailable(f"no answer within {provider.timeout_s}s") from None
        except (aiohttp.ClientError, OSError) as error:
            # The message names the address, never the form body (the token).
            raise IntrospectionUnavailable(
                f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            ) from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise IntrospectionUnavailable("answer is not JSON") from None
        if not isinstance(answer, dict):
            raise IntrospectionUnavailable("answer is not a JSON object")
        if not isinstance(answer.get("active"), bool):
            raise IntrospectionUnavailable("answer has no boolean 'active'")
        return answer

    async def _post(self, form: dict[str, str], headers: dict[str, str]) -> bytes:
        limit = self._provider.max_response_bytes
        async with self._http().post(
            self._provider.introspection_endpoint,
            data=form,
            headers=headers,
            allow_redirects=False,
        ) as response:
            if response.status in (401, 403):
                raise IntrospectionUnavailable(
                    f"HTTP {response.status}: the endpoint refused our client "
                    f"{self._provider.client_id!r} (client_id, secret or client_auth?)"
                )
            if response.status != 200:
                raise IntrospectionUnavailable(f"HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_any():
                body.extend(chunk)
                if len(body) > limit:
                    raise IntrospectionUnavailable(f"answer larger than {limit} bytes")
        return bytes(body)
