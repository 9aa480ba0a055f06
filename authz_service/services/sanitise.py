"""What we show of a request refused unread, and what we may send in a header: cut and
cleaned here, once for every transport.

A request refused before it was read (unreadable, too large, shed) is still audited and
traced, but nothing in it can be trusted to describe it: its audit line and span show at
most `SHOWN_CHARS` of each field, and never its headers. Header values we send (identity
headers from claims, deny bodies copied into a header for NGINX) lose CR, LF and NUL: Envoy
rejects them, and a proxy that did not could be made to split the header.
"""

from __future__ import annotations

from authz_service.decisions import RequestAttributes

SHOWN_CHARS = 256
_FORBIDDEN_IN_VALUE = str.maketrans("", "", "\r\n\x00")

# What an unreadable request is audited as: nothing in it describes it.
UNREADABLE_REQUEST = RequestAttributes(method="", host="", path="")


def unreadable_request(request_id: str = "") -> RequestAttributes:
    """An unreadable request, with the id the gateway gave it when it can be found."""
    if not request_id:
        return UNREADABLE_REQUEST
    return RequestAttributes(method="", host="", path="", request_id=request_id[:SHOWN_CHARS])


def refused_head(
    method: str,
    host: str,
    path: str,
    source_address: str = "",
    peer_principal: str = "",
    request_id: str = "",
) -> RequestAttributes:
    """The head of a request refused unread, each field cut short; its headers unread."""
    return RequestAttributes(
        method=method[:SHOWN_CHARS],
        host=host[:SHOWN_CHARS],
        path=path[:SHOWN_CHARS],
        source_address=source_address[:SHOWN_CHARS],
        peer_principal=peer_principal[:SHOWN_CHARS],
        request_id=request_id[:SHOWN_CHARS],
    )


def header_value(value: str) -> str:
    """`value` without CR, LF and NUL: safe to send as a header value."""
    return value.translate(_FORBIDDEN_IN_VALUE)
