"""Fill the ${NAME} placeholders of an envoy/ template: one config for every deployment."""

from __future__ import annotations

import argparse
import string
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = REPO_ROOT / "envoy" / "envoy.yaml"

LOCAL_DEFAULTS: Mapping[str, str] = {
    "ADMIN_PORT": "9901",
    "LISTEN_ADDRESS": "127.0.0.1",
    "INTERNAL_LISTEN_ADDRESS": "127.0.0.1",
    "PUBLIC_PORT": "10000",
    "INTERNAL_PORT": "10001",
    "AUTHZ_HOST": "127.0.0.1",
    "AUTHZ_PORT": "9001",
    "UPSTREAM_HOST": "127.0.0.1",
    "UPSTREAM_PORT": "8080",
}


def render(values: Mapping[str, object], template: Path = TEMPLATE) -> str:
    """The template with every placeholder filled; a missing value is an error, not a blank."""
    merged = {**LOCAL_DEFAULTS, **{key: str(value) for key, value in values.items()}}
    return string.Template(template.read_text()).substitute(merged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    values = dict(item.split("=", 1) for item in args.set)
    args.out.write_text(render(values, args.template))


if __name__ == "__main__":
    main()
