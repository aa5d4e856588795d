#!/usr/bin/env bash
# Runs one tier of the compiled tests with node's test runner: unit | integration | integrity | all.
# integrity is the short form of the integrity suite (the full form: scripts/integrity.sh).
# Usage: scripts/run-tests.sh <tier> [extra node --test flags]
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-all}"
shift || true
case "$tier" in
  unit) dirs=(test/dist/unit) ;;
  integration) dirs=(test/dist/integration) ;;
  integrity) dirs=(test/dist/integrity) ;;
  all) dirs=(test/dist/unit test/dist/integration test/dist/integrity) ;;
  *) echo "run-tests: unknown tier '$tier' (expected unit, integration, integrity or all)" >&2; exit 2 ;;
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
# No --test-force-exit: each file's process and the runner end by themselves, so no report is cut
# off. scripts/test-child-preload.cjs fails a file whose process is held open by a leaked handle.
exec node --test --require ./scripts/test-child-preload.cjs \
  --test-concurrency="${TEST_CONCURRENCY:-2}" --test-reporter=spec "$@" "${files[@]}"
