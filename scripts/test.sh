#!/usr/bin/env bash
# The project's test command (`npm test`, called by .ci/run): installs what it needs, starts the
# services the tests use (Kafka, schema registry, Redis), checks generated code, formatting and
# lint, builds, and runs the unit and integration tiers with node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

command -v node >/dev/null || { echo "test: node is not installed (Node.js 20+ is required)" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "test: Node.js 20+ is required, found $(node --version)" >&2; exit 1; }

# npm ci when node_modules is missing or older than the lockfile.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci"
  npm ci --no-audit --no-fund
fi

step "stack up (Kafka, schema registry, Redis)"
bash infra/stack.sh up

step "codegen drift check"
node scripts/codegen.mjs --check

step "build"
npx tsc -b

step "format check"
npx prettier --check . >/dev/null || { npx prettier --check . ; exit 1; }
echo "prettier: all files formatted"

step "lint"
npx eslint .
echo "eslint: clean"

step "headless Chromium for the status-page browser test"
bash scripts/install-browser.sh || echo "install-browser: chromium not installed; the browser test will skip"

step "tests (unit and integration)"
bash scripts/run-tests.sh all
