#!/usr/bin/env bash
# Runs one tier of the compiled tests with node's test runner: unit | integration | all.
# Usage: scripts/run-tests.sh <tier> [extra node --test flags]
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-all}"
shift || true
case "$tier" in
  unit) dirs=(test/dist/unit) ;;
  integration) dirs=(test/dist/integration) ;;
  all) dirs=(test/dist/unit test/dist/integration) ;;
  *) echo "run-tests: unknown tier '$tier' (expected unit, integration or all)" >&2; exit 2 ;;
esac
files=()
for d in "${dirs[@]}"; do
  [ -d "$d" ] || continue
  while IFS= read -r f; do files+=("$f"); done < <(find "$d" -name '*.test.js' | sort)
done
if [ "${#files[@]}" -eq 0 ]; then
  echo "run-tests: no compiled tests under ${dirs[*]}; run 'npm run build' first" >&2
  exit 1
fi
exec node --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-reporter=spec "$@" "${files[@]}"
