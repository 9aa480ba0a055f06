#!/usr/bin/env bash
# Install the npm packages of the tests' authorization server (tests/support/oidc_issuer:
# oidc-provider run by Node) exactly as package-lock.json pins them. Idempotent and offline-safe:
# nothing is fetched when the installed packages match the lock file (a stamp in node_modules).
set -euo pipefail
cd "$(dirname "$0")/../tests/support/oidc_issuer"
stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
[ -f "$stamp" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
  # As system-packages.sh does for a non-root user: say so; the tests needing the issuer then
  # skip, or fail under AUTHZ_TESTS_REQUIRE_ALL=1 (CI).
  echo "setup-test-issuer: npm is missing (scripts/system-packages.sh installs nodejs and npm)" >&2
  exit 0
fi
echo "setup-test-issuer: npm ci in tests/support/oidc_issuer" >&2
npm ci --no-audit --no-fund --loglevel=error
touch "$stamp"
