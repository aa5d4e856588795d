#!/usr/bin/env bash
# The integrity suite's full form (issue 11): every fault against the whole pipeline as processes,
# larger streams, and a table (fault, records sent, detections expected and found, duplicates, DLQ).
# Each run uses its own topics, groups, dedup prefix and a private redis-server on a free port.
# The broker fault stops the SHARED local broker that other engineers use: it runs only with
# TAPIO_INTEGRITY_BROKER_FAULT=1. Usage: scripts/integrity.sh [fault ...]   (default: all faults)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/runtime.sh
source scripts/runtime.sh # the pinned Node.js
bash infra/stack.sh up >/dev/null
npx tsc -b
exec node test/dist/integrity/full.js "$@"
