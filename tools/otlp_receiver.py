"""A small OTLP trace receiver for development: spans in over OTLP/gRPC, out as text and JSON.

    python -m tools.otlp_receiver --grpc-port 4317 --http-port 16686

Each span received is printed as one line (service, name, trace id, duration, status), and
`GET /api/spans` (`?trace_id=...`) on the HTTP port returns the last spans kept as JSON. The
local stack runs it where Envoy and the service export their traces; the compose override
runs it in Jaeger's place (same ports). Development only: spans are kept in memory, the
newest `--keep` of them.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import deque
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def _value(any_value: Any) -> Any:
    which = any_value.WhichOneof("value")
    if which == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    if which == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, which) if which else None


def spans_of(request: Any) -> list[dict[str, Any]]:
    """An ExportTraceServiceRequest as plain span dicts."""
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "service": str(resource.get("service.name", "")),
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "kind": span.kind,
                        "duration_ms": (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
                        "status": span.status.code,
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                    }
                )
    return spans


class SpanStore(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, keep: int, quiet: bool = False) -> None:
        self._spans: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._quiet = quiet

    def Export(self, request: Any, context: Any) -> Any:
        received = spans_of(request)
        with self._lock:
            self._spans.extend(received)
        if not self._quiet:
            for span in received:
                print(
                    f"span {span['service']}: {span['name']} trace={span['trace_id']} "
                    f"{span['duration_ms']:.1f} ms status={span['status']}",
                    flush=True,
                )
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            spans = list(self._spans)
        return [s for s in spans if trace_id is None or s["trace_id"] == trace_id]


def _http_handler(store: SpanStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path not in ("/api/spans", "/"):
                self.send_error(404, "try /api/spans?trace_id=...")
                return
            trace_id = parse_qs(url.query).get("trace_id", [None])[0]
            body = json.dumps({"spans": store.snapshot(trace_id)}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the span lines are the output; requests for them are noise

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--grpc-port", type=int, default=4317)
    parser.add_argument("--http-port", type=int, default=16686)
    parser.add_argument("--keep", type=int, default=10_000, help="spans kept for /api/spans")
    parser.add_argument("--quiet", action="store_true", help="do not print each span")
    args = parser.parse_args(argv)

    store = SpanStore(args.keep, args.quiet)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(store, server)
    server.add_insecure_port(f"{args.host}:{args.grpc_port}")
    server.start()
    http = ThreadingHTTPServer((args.host, args.http_port), _http_handler(store))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(
        f"OTLP receiver: gRPC {args.host}:{args.grpc_port}, "
        f"spans at http://{args.host}:{args.http_port}/api/spans",
        flush=True,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    http.shutdown()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
