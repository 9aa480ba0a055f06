"""Requests sent exactly as written: the request target and the Host / `:authority` go on the
wire unchanged, so a path trick (`/public/..;/admin`) or a host spelling (`admin.example.com.`)
reaches the gateway instead of being resolved by the client first, as httpx does.

HTTP/1.1 goes through http.client (it sends the target verbatim); HTTP/2 through curl with
`--request-target`, the `curl --path-as-is` of the brief, since no HTTP/2 client library is a
dependency of the project.
"""

from __future__ import annotations

import http.client
import ssl
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.support import find_binary


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    http_version: str  # "1.1" or "2"


def send_raw(
    base_url: str,
    target: str,
    *,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    ca_file: Path | None = None,
    http2: bool = False,
    timeout: float = 10.0,
) -> RawResponse:
    """`method target` to `base_url` (scheme://host:port). A `host` in `headers` replaces the
    Host header (HTTP/1.1) or `:authority` (HTTP/2)."""
    sent = {name.lower(): value for name, value in (headers or {}).items()}
    if http2:
        return _curl_h2(base_url, target, sent, method, ca_file, timeout)
    url = urlsplit(base_url)
    connection: http.client.HTTPConnection
    if url.scheme == "https":
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        connection = http.client.HTTPSConnection(
            url.hostname or "127.0.0.1", url.port, context=context, timeout=timeout
        )
    else:
        connection = http.client.HTTPConnection(
            url.hostname or "127.0.0.1", url.port, timeout=timeout
        )
    try:
        connection.putrequest(method, target, skip_host="host" in sent, skip_accept_encoding=True)
        for name, value in sent.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        received = {name.lower(): value for name, value in response.getheaders()}
        return RawResponse(response.status, received, body, "1.1")
    finally:
        connection.close()


def _curl_h2(
    base_url: str,
    target: str,
    headers: Mapping[str, str],
    method: str,
    ca_file: Path | None,
    timeout: float,
) -> RawResponse:
    curl = find_binary("curl")
    tls = base_url.startswith("https:")
    with tempfile.TemporaryDirectory() as scratch:
        head, body = Path(scratch) / "head", Path(scratch) / "body"
        command = [
            curl, "--silent", "--show-error", "--noproxy", "*", "--max-time", str(timeout),
            "--http2" if tls else "--http2-prior-knowledge", "--path-as-is",
            "--request", method, "--request-target", target,
            "--dump-header", str(head), "--output", str(body),
            "--write-out", "%{http_version}",
        ]  # fmt: skip
        if ca_file is not None:
            command += ["--cacert", str(ca_file)]
        for name, value in headers.items():
            command += ["--header", f"{name}: {value}"]
        command.append(base_url + "/")
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 5)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "2", f"curl spoke HTTP/{done.stdout}, not HTTP/2"
        status_line, *lines = head.read_text().strip().splitlines()
        received = {}
        for line in lines:
            name, _, value = line.partition(":")
            received[name.strip().lower()] = value.strip()
        return RawResponse(int(status_line.split()[1]), received, body.read_bytes(), "2")
