"""What every section of our config files shares: unknown keys are errors and values are
frozen; and how a header name given in the config is checked. A leaf module, so that the
settings of every package (http, ratelimit, authn) can use it without import cycles."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def header_name(value: str) -> str:
    """The name lower-cased (HTTP/2 and Envoy normalise them), or ValueError if not a token."""
    lowered = value.lower()
    if not _HEADER_NAME.match(lowered):
        raise ValueError(f"{value!r} is not a valid HTTP header name")
    return lowered
