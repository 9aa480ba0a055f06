"""The demo upstream: echoes back, as JSON, the request it received (method, path, headers).

It lets a person (and the end-to-end tests) see exactly which identity headers Envoy passed on.
`GET /downloads/<name>?bytes=N` instead answers N bytes (default 1 MiB) of a file to download,
for the gateway's bandwidth-limited route.
"""

from __future__ import annotations

import argparse
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MIB = 1024 * 1024


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-upstream"
    version_label = "v1"
    # Headers and body are separate writes: without this, Nagle + delayed ACK add 40 ms each.
    disable_nagle_algorithm = True

    def _echo(self) -> None:
        if self.command == "GET" and self.path.startswith("/downloads/"):
            self._download()
            return
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = {
            "version": self.version_label,
            "method": self.command,
            "path": self.path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body_bytes": len(body),
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _download(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        size = min(int(query.get("bytes", [str(MIB)])[0]), 64 * MIB)
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", str(size))
        self.send_header("x-upstream-version", self.version_label)
        self.end_headers()
        chunk = b"\0" * 65536
        for start in range(0, size, len(chunk)):
            self.wfile.write(chunk[: size - start])

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _echo

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_server(port: int, version: str = "v1", host: str = "127.0.0.1") -> ThreadingHTTPServer:
    handler = type("Handler", (EchoHandler,), {"version_label": version})
    ThreadingHTTPServer.daemon_threads = True
    return ThreadingHTTPServer((host, port), handler)


def start_in_thread(port: int = 0, version: str = "v1") -> ThreadingHTTPServer:
    server = make_server(port, version)
    threading.Thread(target=server.serve_forever, name=f"upstream-{version}", daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--version", default="v1")
    args = parser.parse_args()
    make_server(args.port, args.version, args.host).serve_forever()


if __name__ == "__main__":
    main()
