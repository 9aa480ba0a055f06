"""`authz-service test`: the command and what it prints (a diff per failing test, then the
rules no test reached)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from authz_service.config.loader import ConfigError
from authz_service.services.policy_tests import SuiteResult, TestResult, run_suite


def add_test_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = commands.add_parser(
        "test",
        help="run each config's policy tests (CONFIG's NAME.tests.yaml beside it) offline",
    )
    test.add_argument("configs", nargs="+", metavar="CONFIG")
    test.add_argument("--tests", help="the test file (only with one CONFIG)")
    test.add_argument(
        "--rate-limit-dir",
        help="stands in for rate_limit.config_dir (a path that exists only where deployed)",
    )
    test.add_argument(
        "--require-coverage", action="store_true", help="a rule no test reaches fails the run"
    )


def run_tests(args: argparse.Namespace) -> int:
    """0: every test passed (and, with --require-coverage, every rule was reached); 1: not."""
    if args.tests and len(args.configs) != 1:
        print("error: --tests goes with exactly one CONFIG", file=sys.stderr)
        return 2
    status = 0
    for config in args.configs:
        tests = Path(args.tests) if args.tests else None
        try:
            limits = Path(args.rate_limit_dir).resolve() if args.rate_limit_dir else None
            suite = asyncio.run(run_suite(Path(config), tests, limits))
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            status = 1
            continue
        print(suite_text(suite))
        if suite.failed or (args.require_coverage and suite.unreached):
            status = 1
    return status


def suite_text(suite: SuiteResult) -> str:
    lines = [f"{suite.tests_file} (config {suite.config}):"]
    for result in suite.results:
        lines.extend(_result_lines(suite, result))
    passed = len(suite.results) - len(suite.failed)
    lines.append(f"{passed} passed, {len(suite.failed)} failed")
    covered = len(suite.rules) - len(suite.unreached)
    lines.append(f"rules reached by a test: {covered} of {len(suite.rules)}")
    for policy, rule in suite.unreached:
        lines.append(f"  not reached: policy {policy!r} rule {rule!r}")
    return "\n".join(lines)


def _result_lines(suite: SuiteResult, result: TestResult) -> list[str]:
    where = f"{suite.tests_file}:{result.line}" if result.line else str(suite.tests_file)
    if result.passed:
        return [f"  ok    {result.test.name}"]
    decision = result.decision
    lines = [f"  FAIL  {result.test.name} ({where})"]
    width = max(len(m.field) for m in result.mismatches)
    for mismatch in result.mismatches:
        lines.append(f"        {mismatch.field:<{width}}  - expected {mismatch.expected}")
        lines.append(f"        {'':<{width}}  + got      {mismatch.got}")
    lines.append(
        f"        decided by policy {decision.policy or '-'!r} rule {decision.rule or '-'!r}: "
        f"{decision.message}"
    )
    return lines
