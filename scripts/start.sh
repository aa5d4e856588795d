#!/usr/bin/env bash
# `npm start`: the whole pipeline on this machine without Docker. Installs (dependencies and the pinned
# Node.js, scripts/runtime.sh) and builds when needed, brings up the local stack, then runs every
# service as its own process with the collector feeding synthetic incidents and noise, and a live view.
# Each run uses topics, consumer groups and dedup keys of its own (deleted at a clean stop). Ctrl-C
# stops it cleanly. Arguments go to `tapio demo` (e.g. `npm start -- --duration 60 --rate 5000`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/runtime.sh
source scripts/runtime.sh
npx tsc -b
bash infra/stack.sh up
exec node services/cli/bin/tapio.js demo "$@"
