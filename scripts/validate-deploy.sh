#!/usr/bin/env bash
# Offline validation of the deployment files (no Docker engine or cluster needed): Dockerfile and
# entrypoint, docker-compose.yml (Compose spec JSON schema + semantic checks, and
# `docker-compose config -q` when Debian's docker-compose is installed), Prometheus, Grafana and
# infra/k8s (minimal schemas per kind, config, KEDA). The checks are the unit test
# test/unit/deploy/deploy.test.ts, so `npm test` runs them too.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -b
exec node --test --test-reporter=spec test/dist/unit/deploy/deploy.test.js
