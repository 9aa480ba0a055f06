"""examples/aws builds from this repository and the built package decides in a bare Python:
every CodeUri the SAM template names exists, and every Handler is importable from it."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO_ROOT

AWS = REPO_ROOT / "examples" / "aws"
FIXTURE = REPO_ROOT / "tests" / "unit" / "lambda_authorizer" / "fixtures" / "rest_request_v1.json"


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads !Ref, !GetAtt, !Sub as plain values: only the structure matters here."""


_CloudFormationLoader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: (
        loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None
    ),
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """build.sh's output (the template's CodeUri) in a temporary directory."""
    out = tmp_path_factory.mktemp("aws") / "build"
    subprocess.run(
        [str(AWS / "build.sh"), str(out)],
        check=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(out.parent)},
    )
    return out


def functions() -> dict[str, Any]:
    template = yaml.load((AWS / "template.yaml").read_text(), Loader=_CloudFormationLoader)
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_every_code_uri_exists_once_built(built: Path) -> None:
    for name, properties in functions().items():
        code_uri = properties["CodeUri"].rstrip("/")
        where = built if code_uri == "build" else AWS / code_uri
        module = properties["Handler"].rsplit(".", 1)[0].replace(".", "/") + ".py"
        assert (where / module).is_file(), (name, where / module)


def test_the_built_authorizer_decides_in_a_bare_python(built: Path, tmp_path: Path) -> None:
    # Nothing but the standard library and the build directory: what Lambda has.
    venv.create(tmp_path / "bare", with_pip=False)
    event = json.loads(FIXTURE.read_text())
    event["path"] = "/public/readme"
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(built)!r})\n"
        "from authz_service.lambda_authorizer.handler import handler\n"
        "print(json.dumps(handler(json.loads(sys.stdin.read()))))\n"
    )
    result = subprocess.run(
        [str(tmp_path / "bare" / "bin" / "python"), "-c", script],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=built,
        env={"AUTHZ_CONFIG": "config.yaml", "AUTHZ_CONTEXT": "policy=public"},
    )

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert answer["context"]["rule"] == "public-docs"


def test_the_demo_app_echoes_the_authorizers_decision() -> None:
    sys.path.insert(0, str(AWS / "app"))
    try:
        from app import handler  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(AWS / "app"))
    event = {
        "rawPath": "/api/orders",
        "requestContext": {"authorizer": {"lambda": {"principal": "alice", "tier": "gold"}}},
    }

    body = json.loads(handler(event)["body"])

    assert body["principal"] == "alice" and body["tier"] == "gold"
