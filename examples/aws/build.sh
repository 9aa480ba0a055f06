#!/usr/bin/env bash
# Package the Lambda authorizer from this repository (the package is not on PyPI):
#   examples/aws/build.sh [BUILD_DIR]     default examples/aws/build, the template's CodeUri
# then: cd examples/aws && sam deploy --guided
# Dependencies with native code (grpcio, cryptography, hiredis, pydantic-core) are installed
# as manylinux wheels for CPython 3.11 on x86_64, the template's runtime and architecture,
# whatever machine builds it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$here/build}"
python="${PYTHON:-python3}"
rm -rf "$out"
mkdir -p "$out"
# The project itself (pure Python) from the repository, without its dependencies...
"$python" -m pip install --quiet --no-deps --target "$out" "$repo"
# ...and its runtime dependencies as Lambda-compatible wheels.
"$python" -c 'import tomllib, sys; [print(d) for d in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]]' \
  "$repo/pyproject.toml" > "$out/.requirements.txt"
if [ "${AUTHZ_LAMBDA_SKIP_DEPS:-}" != "1" ]; then
  "$python" -m pip install --quiet --target "$out" --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp \
    -r "$out/.requirements.txt"
fi
rm "$out/.requirements.txt"
cp "$here/config.yaml" "$out/config.yaml"
echo "built $out: handler authz_service.lambda_authorizer.handler.handler, config.yaml" >&2
