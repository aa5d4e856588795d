#!/usr/bin/env bash
# The project's test command (`npm test`, called by .ci/run): installs what it needs (dependencies and
# the pinned Node.js, scripts/runtime.sh), starts the services the tests use (Kafka, schema registry,
# Redis), checks generated code, formatting and lint, builds, runs the unit, integration and integrity
# (short form) tiers on the pinned Node.js, then the unit tier again on the previous LTS.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# shellcheck source=scripts/runtime.sh
source scripts/runtime.sh
step "runtime: node $(node --version) ($(command -v node))"

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

# The previous LTS (infra/node-previous, pinned in its lockfile) runs the unit tier after the main run.
previous_node=""
if [ "${TAPIO_SKIP_PREVIOUS_LTS:-}" != 1 ]; then
  step "previous Node.js LTS for the unit tier"
  if [ ! -x infra/node-previous/node_modules/.bin/node ] ||
    [ infra/node-previous/package-lock.json -nt infra/node-previous/node_modules/.package-lock.json ]; then
    (cd infra/node-previous && npm ci --no-audit --no-fund)
  fi
  previous_node="$PWD/infra/node-previous/node_modules/.bin"
  [ -x "$previous_node/node" ] || { echo "test: the previous LTS did not install (infra/node-previous)" >&2; exit 1; }
  echo "node $("$previous_node/node" --version)"
fi

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
step "tests (unit, integration, integrity short form) on node $(node --version)"
status=0
bash scripts/run-tests.sh all 2>&1 | tee "$logs/main.log" || status=$?

if [ -n "$previous_node" ]; then
  step "unit tier on the previous LTS, node $("$previous_node/node" --version)"
  PATH="$previous_node:$PATH" bash scripts/run-tests.sh unit 2>&1 | tee "$logs/previous.log" || status=$?
fi

# One closing line over both runs (each runner's own summary is above it).
count() { sed -n "s/^ℹ $1 \([0-9][0-9]*\)$/\1/p" "$logs"/*.log | awk '{ s += $1 } END { print s + 0 }'; }
echo
echo "tests: $(count pass) passed, $(count fail) failed, $(count skipped) skipped"
exit "$status"
