"""Just enough PromQL reading to check the alert rules and the dashboard: which metric names an
expression selects, and with which label matchers.

Not a parser: string literals, label matchers, ranges and grouping clauses are cut out, and the
remaining identifiers that are not functions, aggregations or keywords are metric names.
`promtool check rules` (see test_rules.py) is what proves the syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Grafana's variables, replaced by something PromQL accepts before reading an expression.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
}
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)\b(?!\s*\()")
KEYWORDS = frozenset(
    {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2"}
)


@dataclass(frozen=True)
class Matcher:
    metric: str
    label: str
    op: str
    value: str


def fill_grafana_variables(expr: str) -> str:
    """The expression with Grafana's interval variables set and template variables as `.*`."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return _VARIABLE.sub(".*", expr)


def metric_names(expr: str) -> set[str]:
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in KEYWORDS}


def matchers(expr: str) -> list[Matcher]:
    found = []
    for metric, body in _SELECTOR.findall(expr):
        for label, op, value in _MATCHER.findall(body):
            found.append(Matcher(metric, label, op, value))
    return found


def alternatives(matcher: Matcher) -> list[str]:
    """The values a `=` or `=~"a|b|c"` matcher names (empty for other regexes)."""
    if matcher.op in ("=", "!="):
        return [matcher.value]
    if re.fullmatch(r"[\w|]+", matcher.value):
        return matcher.value.split("|")
    return []
