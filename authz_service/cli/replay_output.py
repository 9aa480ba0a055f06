"""`authz-service replay`: the command and its report (changed decisions grouped by the
candidate's rule and reason, each with the request it was)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.config.loader import ConfigError, load_config_file
from authz_service.decisions import Identity
from authz_service.services.compiled_config import QuotaStoreHolder, compile_config
from authz_service.services.replay import ReplayReport, replay

SHOWN_PER_GROUP = 20


def add_replay_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "replay",
        help="re-decide audited decisions under a candidate config; exit 1 if any would change",
    )
    command.add_argument("--config", required=True, help="the candidate config")
    command.add_argument(
        "--decisions", required=True, help="an audit log (JSON lines), '-' for stdin"
    )
    command.add_argument(
        "--rate-limit-dir",
        help="stands in for rate_limit.config_dir (a path that exists only where deployed)",
    )


def run_replay(args: argparse.Namespace) -> int:
    """0: no decision changes; 1: some would; 2: the config or the log cannot be read."""
    try:
        loaded = load_config_file(args.config)
        if args.rate_limit_dir and loaded.config.rate_limit is not None:
            local = loaded.config.rate_limit.model_copy(
                update={"config_dir": Path(args.rate_limit_dir).resolve()}
            )
            loaded = replace(loaded, config=loaded.config.model_copy(update={"rate_limit": local}))
        # The candidate's policies only: no key is fetched, no store is connected.
        compiled = compile_config(loaded, JwksRegistry(), QuotaStoreHolder())
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if args.decisions == "-":
            report = replay(compiled, sys.stdin)
        else:
            with open(args.decisions, encoding="utf-8") as lines:
                report = replay(compiled, lines)
    except OSError as error:
        print(f"error: {args.decisions}: cannot read: {error.strerror or error}", file=sys.stderr)
        return 2
    print(report_text(report, args.decisions))
    return 1 if report.changes else 0


def report_text(report: ReplayReport, source: str) -> str:
    lines = [
        f"{report.decisions} decisions read from {source}: {len(report.changes)} would change, "
        f"{report.unchanged} unchanged"
    ]
    if report.skipped:
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(report.skipped.items()))
        lines.append(f"not decided by the policy, not replayed: {skipped}")
    if report.unreadable:
        shown = ", ".join(str(n) for n in report.unreadable[:10])
        lines.append(f"unreadable lines ({len(report.unreadable)}): {shown}")
    for (policy, rule, reason, moved), changes in report.groups().items():
        lines.append("")
        lines.append(
            f"{len(changes)} x {moved} ({reason}) by policy {policy or '-'!r} rule {rule or '-'!r}"
        )
        for change in changes[:SHOWN_PER_GROUP]:
            recorded = change.recorded
            request = recorded.request
            who = recorded.authn.principal if isinstance(recorded.authn, Identity) else "-"
            lines.append(
                f"  line {recorded.line}: {request.method} {request.host}{request.path} "
                f"by {who or '-'} at {recorded.at or '-'}; "
                f"was {recorded.reason} (rule {recorded.rule or '-'!r})"
            )
        if len(changes) > SHOWN_PER_GROUP:
            lines.append(f"  ... and {len(changes) - SHOWN_PER_GROUP} more")
    return "\n".join(lines)
