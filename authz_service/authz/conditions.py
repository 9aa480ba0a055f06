"""`when:` conditions of rules: CEL expressions over the request and the identity.

Compiled once at config load with `common-expression-language` (Rust bindings; about 20x
faster per evaluation than the pure-Python `cel-python` in benchmarks/bench_conditions.py,
and the same CEL standard library). An expression sees exactly two variables, `request` and
`identity`, built here from the request and the verified identity: nothing else (no
environment, no files, no clock) is handed to the evaluator, and CEL has no I/O of its own.

Cost bound: an expression is at most `MAX_LENGTH` characters with at most
`MAX_COMPREHENSIONS` list macros (`all`, `exists`, `exists_one`, `map`, `filter`), and its
inputs are the request as the size limits let it in, so one evaluation is bounded.

An expression that fails at run time (a claim that is missing, a result that is not a bool)
never allows: on an allow rule the condition counts as false, on a deny rule as true.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import cel

from authz_service.decisions import Identity, RequestAttributes
from authz_service.errors import ConfigError

MAX_LENGTH = 1024
MAX_COMPREHENSIONS = 2
VARIABLES = frozenset({"request", "identity"})
_MACRO = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)")
_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")


class BadCondition(ConfigError):
    """A `when:` expression that cannot be used; `column` is 1-based, 0 when unknown."""

    def __init__(self, message: str, column: int = 0) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True, slots=True)
class ConditionResult:
    """One evaluation, for explain: the value, or why it could not be computed."""

    holds: bool
    shown: str


class Condition:
    """One compiled `when:` expression."""

    __slots__ = ("_program", "_when_failing", "source")

    def __init__(self, source: str, *, deny_rule: bool) -> None:
        self.source = source
        self._when_failing = deny_rule
        if len(source) > MAX_LENGTH:
            raise BadCondition(f"the expression is longer than {MAX_LENGTH} characters")
        bound = set(_MACRO.findall(source))
        if len(_MACRO.findall(source)) > MAX_COMPREHENSIONS:
            raise BadCondition(f"more than {MAX_COMPREHENSIONS} list macros (cost bound)")
        try:
            self._program = cel.compile(source)
        except ValueError as error:
            text = str(error)
            found = _POSITION.search(text)
            if found is None:
                raise BadCondition(text.splitlines()[0]) from None
            raise BadCondition(found.group(3), int(found.group(2))) from None  # 1-based
        unknown = sorted(set(self._program.variables()) - VARIABLES - bound)
        if unknown:
            where = source.find(unknown[0])
            raise BadCondition(
                f"unknown variable {unknown[0]!r} (only 'request' and 'identity' exist)",
                where + 1 if where >= 0 else 0,
            )

    def evaluate(self, variables: dict[str, Any]) -> ConditionResult:
        try:
            value = self._program.execute(variables)
        except Exception as error:  # any failure of the expression is a "no", never a crash
            return ConditionResult(self._when_failing, f"error: {type(error).__name__} {error}")
        if not isinstance(value, bool):
            shown = f"error: the result is {type(value).__name__}, not a bool"
            return ConditionResult(self._when_failing, shown)
        return ConditionResult(value, str(value).lower())


def variables(request: RequestAttributes, identity: Identity | None) -> dict[str, Any]:
    """What an expression can see: the request and, when there is one, the identity."""
    path = request.path_without_query
    _, _, query_text = request.path.partition("?")
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_text.split("#", 1)[0], keep_blank_values=True):
        query.setdefault(key, value)  # the first of a repeated parameter, as most servers read
    seen = {
        "method": request.method.upper(),
        "host": request.host,
        "path": path,
        "segments": [segment for segment in path.split("/") if segment],
        "headers": dict(request.headers),
        "query": query,
        "source_address": request.source_address,
    }
    who: dict[str, Any] = {
        "authenticated": identity is not None,
        "principal": identity.principal if identity else "",
        "auth_method": identity.method.value if identity else "",
        "issuer": identity.issuer if identity else "",
        "roles": sorted(identity.roles) if identity else [],
        "scopes": sorted(identity.scopes) if identity else [],
        "tier": identity.tier if identity else "",
        "claims": dict(identity.verified_claims) if identity else {},
    }
    return {"request": seen, "identity": who}


__all__ = ["BadCondition", "Condition", "ConditionResult", "variables"]
