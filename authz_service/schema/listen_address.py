"""The value format of every `listen:` setting (and `--listen` flag): host:port."""

from __future__ import annotations


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {listen!r} must be host:port")
    return host, int(port)
