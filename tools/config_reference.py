"""Generate the configuration reference and the JSON Schema from the config model itself.

    python -m tools.config_reference            # rewrite docs/configuration.md and the schema
    python -m tools.config_reference --check    # exit 1 if either differs (CI)

docs/configuration.md lists every setting: its type, default, whether a reload applies it
(SIGHUP or a file change) or it needs a restart, and the comment beside it in the model.
docs/config.schema.json is the model's JSON Schema, for editors (yaml-language-server:
`# yaml-language-server: $schema=<path>/docs/config.schema.json` on a config file's first
line gives completion and checks while typing).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from authz_service.schema import Config

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = REPO_ROOT / "docs" / "configuration.md"
SCHEMA = REPO_ROOT / "docs" / "config.schema.json"

# Read once at start (listeners, TLS setup, telemetry exporters, stores): a reload logs the
# change and keeps running with the old value until the service restarts.
RESTART_ONLY = ("server.", "telemetry.", "revocation.", "admin.", "http_check.")
RESTART_ONLY_RATE_LIMIT = (
    "rate_limit.store",
    "rate_limit.redis.",
    "rate_limit.circuit_breaker.",
    "rate_limit.local_over_limit_cache",
    "rate_limit.local_cache_max_entries",
)
# Read when used, so a reload applies them.
APPLIED_BY_RELOAD = ("server.drain_delay_s",)


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str
    applied: str
    note: str


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """The comment lines above (or beside) each field in the model's source."""
    notes: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines[1:]:
            stripped = line.strip()
            if stripped.startswith("#"):
                pending.append(stripped.lstrip("#").strip())
                continue
            field = re.match(r"^\s{4}(\w+)\s*:", line)
            if field:
                inline = line.split("#", 1)[1].strip() if " # " in line else ""
                notes[field.group(1)] = " ".join([*pending, inline]).strip()
            pending = []
    return notes


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _type_name(annotation: Any) -> str:
    annotation = _strip(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args if arg is not type(None)) + (
            " or null" if type(None) in args else ""
        )
    if origin in (list, tuple, set, frozenset):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(see below)"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple | frozenset | set):
        value = list(value)
    try:
        return f"`{json.dumps(value)}`"
    except TypeError:
        return f"`{value}`"


def _models_in(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """(path suffix, model) for each model a field holds: itself, list items, map values."""
    annotation = _strip(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            yield from _models_in(arg)
    elif origin in (list, tuple):
        for suffix, model in _models_in(args[0]) if args else ():
            yield "[]" + suffix, model
    elif origin is dict:
        for suffix, model in _models_in(args[1]):
            yield ".<name>" + suffix, model


def _applied(path: str) -> str:
    if path.startswith(APPLIED_BY_RELOAD):
        return "reload"
    if (path + ".").startswith(RESTART_ONLY) or path.startswith(RESTART_ONLY_RATE_LIMIT):
        return "restart"
    return "reload"


def rows(
    model: type[BaseModel] = Config,
    prefix: str = "",
    ancestors: tuple[type[BaseModel], ...] = (),
) -> list[Row]:
    found: list[Row] = []
    ancestors = (*ancestors, model)
    notes = _comments(model)
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        note = (field.description or notes.get(name, "")).replace("|", "\\|")
        found.append(Row(path, _type_name(field.annotation), _default(field), _applied(path), note))
        seen: set[type[BaseModel]] = set()
        for suffix, sub in _models_in(field.annotation):
            if sub in seen or sub in ancestors:
                continue  # nested descriptors repeat their parent's shape: listed once
            seen.add(sub)
            found += rows(sub, f"{path}{suffix}.", ancestors)
    return found


def reference() -> str:
    lines = [
        "<!-- GENERATED by `python -m tools.config_reference` from authz_service/config: do not",
        "     edit; change the model (and its comments) and regenerate. CI fails on drift. -->",
        "# Configuration reference",
        "",
        "Every setting of the service's YAML config file. Unknown keys are errors. **Applied**:",
        "`reload` takes effect on SIGHUP or when the file changes (the directory is watched);",
        "`restart` is read once at start (listeners, TLS, exporters, stores): a reload keeps",
        "the running value until the service restarts. An editor can check a config while you",
        "type with the JSON Schema [`config.schema.json`](config.schema.json): put",
        "`# yaml-language-server: $schema=<path to>/docs/config.schema.json` on its first line.",
        "",
        "| Setting | Type | Default | Applied | Notes |",
        "|---|---|---|---|---|",
    ]
    for row in rows():
        lines.append(f"| `{row.path}` | {row.type} | {row.default} | {row.applied} | {row.note} |")
    lines.extend(["", "## Examples", ""])
    for title, text in EXAMPLES:
        lines.extend([f"### {title}", "", *text.strip("\n").splitlines(), ""])
    return "\n".join(lines).rstrip("\n") + "\n"


# Worked examples of the settings that need more than a line (tests/unit/config checks that
# each YAML block here is valid).
EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "A condition on a rule (`when:`, CEL)",
        """
`when:` is a [CEL](https://cel.dev) expression; the rule applies only when it is true.
It sees `request` (`method`, `host`, `path`, `segments`, `headers`, `query`,
`source_address`) and `identity` (`authenticated`, `principal`, `auth_method`, `issuer`,
`roles`, `scopes`, `tier`, `claims`: the verified token's payload). Nothing else can be
named. It is compiled when the config loads (an error names the file, line and column),
is at most 1024 characters with at most 2 list macros, and an expression that fails at run
time (a missing claim) never allows: on an allow rule it counts as false, on a deny rule as
true. `authz-service explain` shows each condition's value.

```yaml
policies:
  default:
    rules:
      - name: own-tenant
        match: { paths: [{ prefix: /tenants/ }] }
        allow: authenticated
        when: size(request.segments) >= 2 && identity.claims.tenant == request.segments[1]
      - name: office-network-only
        match: { paths: [{ prefix: /payroll/ }] }
        allow: { roles_any: [hr] }
        when: request.source_address.startsWith("10.20.") && request.headers["x-internal"] == "1"
```
""",
    ),
    (
        "Shadow rules and shadow policies",
        """
A rule with `mode: shadow`, or a whole policy with `shadow_of: <policy>`, is decided on
every request beside the enforced policy and never enforced. Its would-be decision is
recorded: `authz_shadow_decisions_total{policy,rule,decision,agrees}`, the span attributes
`authz.shadow.decision`, `.reason`, `.rule`, `.policy`, `.agrees`, and `authz.shadow` in the
audit line. A shadow policy cannot be selected by itself.

```yaml
policies:
  public:
    rules:
      - name: admins-only-soon
        mode: shadow
        match: { paths: [{ prefix: /api/ }] }
        allow: { roles_any: [admin] }
      - name: api
        match: { paths: [{ prefix: /api/ }] }
        allow: authenticated
  internal:
    rules:
      - name: services
        allow: { auth_methods: [api_key, mtls] }
  internal-v2:  # a policy shadows one without shadow rules of its own
    shadow_of: internal
    rules:
      - name: services-with-role
        allow: { roles_any: [internal-service], auth_methods: [api_key, mtls] }
```
""",
    ),
    (
        "Policy tests (`authz-service test`)",
        """
`authz-service test config.yaml` runs `config.tests.yaml` (beside it) through the whole
decision pipeline, offline: tokens are minted from `token.claims` with a key made for the
run, the quota store is in memory. Exit 0 when every test passes; 1 with a diff per failing
field otherwise. It lists the rules no test reaches (`--require-coverage` fails on them);
`--rate-limit-dir` stands in for a `rate_limit.config_dir` that exists only where deployed.

```yaml
tests:
  - name: an editor writes to the API
    request: { method: POST, path: /api/orders, context: { policy: public } }
    token: { claims: { sub: ed, realm_access: { roles: [editor] } } }
    expect: { decision: allow, rule: api-writes, headers: { x-user-id: ed } }
  - name: the batch job uses its API key
    request: { path: /internal/jobs, headers: { x-api-key: dev-only-api-key } }
    expect: { decision: forbidden, reason: no_matching_rule, shadow_decision: allow }
```
""",
    ),
    (
        "Replay before rollout (`authz-service replay`)",
        """
`authz-service replay --config candidate.yaml --decisions audit.jsonl` re-decides every
audited Check under the candidate's policies and prints each decision that would change,
grouped by the candidate's rule, reason and outcome (exit 1 when any would). The audit line
holds what replay needs and no secret: method, host, path (query values redacted), client
address, mTLS peer, the policy, and the identity (principal, auth method, roles, scopes,
tier). A `when:` reading headers, query values or claims sees them missing in a replay.
""",
    ),
    (
        "AuthZEN access evaluation (`http_check.authzen`)",
        """
With `http_check.authzen.enabled`, the HTTP check port answers the OpenID AuthZEN
Authorization API 1.0 `POST /access/v1/evaluation` (and
`/.well-known/authzen-configuration`). The action becomes the method
(`properties.method`, an HTTP method name, or `actions`), the resource the path
(`properties.path`, else `/<type>/<id>`), the context's strings the check's context
(`policy` selects a policy). The subject is the credential it carries
(`properties.token`, a bearer token, or `properties.api_key`); `subject.id` must be its
verified principal. Every decision is a 200 `{"decision": ..., "context": {"reason": ...}}`;
a malformed request is 400.

```yaml
http_check:
  listen: 127.0.0.1:9003
  authzen:
    enabled: true
    actions: { can_read: GET, can_write: PUT, can_delete: DELETE }
```
""",
    ),
)


def schema() -> str:
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "authz_service configuration",
        **Config.model_json_schema(mode="validation"),
    }
    return json.dumps(document, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    outputs = {REFERENCE: reference(), SCHEMA: schema()}
    if args.check:
        stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        for path in stale:
            print(
                f"{path.relative_to(REPO_ROOT)} is stale: run python -m tools.config_reference",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
