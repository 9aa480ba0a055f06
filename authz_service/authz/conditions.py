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

    __slots__ = ("_program", "_when_failing", "fields", "source")

    def __init__(self, source: str, *, deny_rule: bool) -> None:
        self.source = source
        self._when_failing = deny_rule
        self.fields = fields_named(source)
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


REQUEST_FIELDS = ("method", "host", "path", "segments", "headers", "query", "source_address")
IDENTITY_FIELDS = (
    "authenticated",
    "principal",
    "auth_method",
    "issuer",
    "roles",
    "scopes",
    "tier",
    "claims",
)
ALL_FIELDS = frozenset(REQUEST_FIELDS + IDENTITY_FIELDS)


def fields_named(source: str) -> frozenset[str]:
    """The request and identity fields an expression may read (a word of the source): only
    those are built and handed to CEL, whose cost grows with what it is given."""
    return frozenset(word for word in re.findall(r"[A-Za-z_]\w*", source) if word in ALL_FIELDS)


def variables(
    request: RequestAttributes, identity: Identity | None, fields: frozenset[str] = ALL_FIELDS
) -> dict[str, Any]:
    """What an expression can see: the request and, when there is one, the identity (only
    `fields` of them; a field left out is missing, which an expression naming it never is)."""
    seen: dict[str, Any] = {}
    if fields & {"path", "segments"}:
        path = request.path_without_query
        seen["path"] = path
        seen["segments"] = [segment for segment in path.split("/") if segment]
    if "query" in fields:
        _, _, query_text = request.path.partition("?")
        query: dict[str, str] = {}
        for key, value in parse_qsl(query_text.split("#", 1)[0], keep_blank_values=True):
            query.setdefault(key, value)  # the first of a repeated parameter, as servers read
        seen["query"] = query
    if "method" in fields:
        seen["method"] = request.method.upper()
    if "host" in fields:
        seen["host"] = request.host
    if "headers" in fields:
        seen["headers"] = dict(request.headers)
    if "source_address" in fields:
        seen["source_address"] = request.source_address
    who: dict[str, Any] = {}
    if "authenticated" in fields:
        who["authenticated"] = identity is not None
    if "principal" in fields:
        who["principal"] = identity.principal if identity else ""
    if "auth_method" in fields:
        who["auth_method"] = identity.method.value if identity else ""
    if "issuer" in fields:
        who["issuer"] = identity.issuer if identity else ""
    if "roles" in fields:
        who["roles"] = sorted(identity.roles) if identity else []
    if "scopes" in fields:
        who["scopes"] = sorted(identity.scopes) if identity else []
    if "tier" in fields:
        who["tier"] = identity.tier if identity else ""
    if "claims" in fields:
        who["claims"] = dict(identity.verified_claims) if identity else {}
    return {"request": seen, "identity": who}


__all__ = ["BadCondition", "Condition", "ConditionResult", "fields_named", "variables"]
