"""How large a check request's head may be, measured before its header map is built.

Envoy bounds what it accepts from clients (100 headers, 60 KiB by default), but nothing bounds
what reaches us: a CheckRequest of 10,000 headers (3 MB, under gRPC's message limit) cost
~30 ms of CPU to turn into a dict and match, and gigabytes at 128 in flight. Both transports
measure the head first and deny an oversized one (431 `request_too_large`): the header count
comes free from the parsed message, and the size is summed only once the count is bounded.
"""

from __future__ import annotations

from collections.abc import Iterable

from authz_service.errors import RequestTooLarge
from authz_service.schema import RequestLimits

__all__ = ["RequestTooLarge", "check_head_size", "check_header_count"]


def check_header_count(count: int, limits: RequestLimits) -> None:
    if count > limits.max_headers:
        raise RequestTooLarge(f"{count} headers; at most {limits.max_headers} are accepted")


def check_head_size(parts: Iterable[str | bytes], limits: RequestLimits) -> None:
    """`parts`: every header name and value, the path and the host."""
    size = sum(map(len, parts))
    if size > limits.max_header_bytes:
        raise RequestTooLarge(
            f"{size} bytes of headers; at most {limits.max_header_bytes} are accepted"
        )
