#!/usr/bin/env bash
# Compares the working tree's V2 engine with the one at a git ref, both at once on the same core
# (see bench/engine-ab.ts for why): prints new/base events per CPU-second on each core and their mean.
# The same build against itself gives 0.99-1.00 here; a change is worth believing above ~1.02.
#
#   scripts/engine-ab.sh <base ref> [seconds per core, default 30] [--unchecked]
#
# The base's engine-v2 sources are compiled against the working tree's other packages (events, rules,
# errors): compare engine changes, not changes of those. --unchecked: probes that change results.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/runtime.sh
source scripts/runtime.sh # the pinned Node.js
base_ref="${1:?usage: scripts/engine-ab.sh <base ref> [seconds per core] [--unchecked]}"
seconds="${2:-30}"
extra=()
[ "${3:-}" = "--unchecked" ] && extra=(--unchecked)
git rev-parse --verify --quiet "$base_ref^{commit}" >/dev/null || { echo "engine-ab: no commit '$base_ref'" >&2; exit 2; }

npx tsc -b
tmp="$(mktemp -d)"
cleanup() { git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
git worktree add --quiet --detach "$tmp/base" "$base_ref"
ln -s "$PWD/node_modules" "$tmp/base/node_modules"
# Into the worktree, so that its node_modules link resolves the engine's imports.
base_dist="$tmp/base/packages/engine-v2/dist"
npx tsc -p "$tmp/base/packages/engine-v2" --outDir "$base_dist" --tsBuildInfoFile "$tmp/base.tsbuildinfo"

pin=(taskset -c)
command -v taskset >/dev/null || { echo "engine-ab: taskset not found; the two sides are not pinned" >&2; pin=(); }
ratios=()
for core in 1 0; do
  start=$(( $(date +%s%3N) + 30000 ))
  if [ ${#pin[@]} -gt 0 ]; then p=("${pin[@]}" "$core"); else p=(); fi
  "${p[@]}" node bench/dist/engine-ab.js "$base_dist" "$start" "$(( seconds * 1000 ))" "${extra[@]}" > "$tmp/base.$core" &
  "${p[@]}" node bench/dist/engine-ab.js packages/engine-v2/dist "$start" "$(( seconds * 1000 ))" "${extra[@]}" > "$tmp/new.$core" &
  wait
  base_rate=$(node -p "JSON.parse(require('fs').readFileSync('$tmp/base.$core', 'utf8')).eventsPerCpuSecond")
  new_rate=$(node -p "JSON.parse(require('fs').readFileSync('$tmp/new.$core', 'utf8')).eventsPerCpuSecond")
  ratio=$(node -p "($new_rate / $base_rate).toFixed(3)")
  ratios+=("$ratio")
  echo "core $core: base ($base_ref) $base_rate, new $new_rate events per CPU-second: new/base $ratio"
done
echo "new/base: ${ratios[*]}; mean $(node -p "((${ratios[0]} + ${ratios[1]}) / 2).toFixed(3)")"
