#!/usr/bin/env bash
# Compile protos/ (the project's own gRPC API) into authz_service/ with grpcio-tools.
# CI runs this with --check and fails when the committed generated code is out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
protos=$(cd protos && find . -name '*.proto' | sort)
(cd protos && "$OLDPWD/$PY" -m grpc_tools.protoc -I. --python_out="$out" --grpc_python_out="$out" $protos)
if [ "${1:-}" = "--check" ]; then
  status=0
  for file in $(cd "$out" && find . -name "*.py" | sort); do
    if ! cmp -s "$out/$file" "$file"; then
      echo "generated code out of date: $file (run scripts/gen-protos.sh)" >&2
      status=1
    fi
  done
  exit $status
fi
(cd "$out" && find . -name "*.py") | while read -r file; do
  mkdir -p "$(dirname "$file")"
  cp "$out/$file" "$file"
done
