#!/usr/bin/env bash
# `npm start`: the whole pipeline on this machine without Docker. Installs and builds when needed,
# brings up the local stack, creates the topics, then runs every service as its own process with
# the collector feeding synthetic incidents and noise, and a live view. Ctrl-C stops it cleanly.
# Arguments go to `tapio demo` (e.g. `npm start -- --duration 60 --rate 5000`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npx tsc -b
bash infra/stack.sh up
node services/cli/bin/tapio.js topics ensure
exec node services/cli/bin/tapio.js demo "$@"
