"""`authz-service test`: the shipped policies pass their tests; a wrong expectation fails the
run with a readable diff; rules no test reaches are listed (and fail with --require-coverage)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authz_service", "test", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_shipped_policies_pass_their_tests_and_every_rule_is_reached() -> None:
    done = run(
        "config/local.yaml",
        "compose/authz/config.yaml",
        "deploy/kubernetes/authz-service/config.yaml",
        "--rate-limit-dir",
        "examples/ratelimit/domains",
        "--require-coverage",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(", 0 failed") == 3
    assert "not reached" not in done.stdout


def test_a_wrong_expectation_fails_with_a_diff_naming_the_line(tmp_path: Path) -> None:
    tests = tmp_path / "wrong.tests.yaml"
    tests.write_text(
        "tests:\n"
        "  - name: readers may write (they may not)\n"
        "    request: { method: POST, path: /api/orders }\n"
        "    token: { claims: { sub: rita, realm_access: { roles: [reader] } } }\n"
        "    expect: { decision: allow, rule: api-writes }\n"
    )
    done = run("config/local.yaml", "--tests", str(tests))

    assert done.returncode == 1
    assert f"FAIL  readers may write (they may not) ({tests}:2)" in done.stdout
    assert "decision  - expected allow" in done.stdout
    assert "+ got      forbidden" in done.stdout
    assert "needs one of roles ['admin', 'editor']" in done.stdout
    assert "0 passed, 1 failed" in done.stdout


def test_rules_no_test_reaches_are_listed_and_fail_with_require_coverage(tmp_path: Path) -> None:
    tests = tmp_path / "few.tests.yaml"
    tests.write_text(
        yaml.safe_dump(
            {
                "tests": [
                    {
                        "name": "public docs",
                        "request": {"path": "/public/a"},
                        "expect": {"decision": "allow", "rule": "public-docs"},
                    }
                ]
            }
        )
    )
    listed = run("config/local.yaml", "--tests", str(tests))
    required = run("config/local.yaml", "--tests", str(tests), "--require-coverage")

    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "rules reached by a test: 1 of 8" in listed.stdout
    assert "not reached: policy 'public' rule 'admin-area'" in listed.stdout
    assert required.returncode == 1


def test_a_test_file_with_an_unknown_field_is_refused_with_its_line(tmp_path: Path) -> None:
    tests = tmp_path / "typo.tests.yaml"
    tests.write_text(
        "tests:\n  - name: x\n    request: { path: /a }\n    expect: { decison: allow }\n"
    )
    done = run("config/local.yaml", "--tests", str(tests))

    assert done.returncode == 1
    assert f"{tests}:4" in done.stderr and "decison" in done.stderr
