#!/bin/sh
# Container entrypoint: `entrypoint.sh <service> [args]` runs services/<service>/dist/main.js,
# `entrypoint.sh tapio [args]` the CLI. exec, so node is PID 1 and gets SIGTERM itself (the
# services stop cleanly on it: finish the batch, commit, leave the group).
set -eu
app=/app
[ -d "$app/services" ] || app=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)

available() {
  for m in "$app"/services/*/dist/main.js; do
    s=${m#"$app/services/"}
    s=${s%/dist/main.js}
    [ "$s" = cli ] || printf ' %s' "$s"
  done
}

svc=${1:-}
case "$svc" in
  '' | -h | --help | help)
    echo "usage: <service> [--config file] | tapio <command> ..." >&2
    echo "services:$(available)" >&2
    exit 2
    ;;
  tapio)
    shift
    exec node "$app/services/cli/bin/tapio.js" "$@"
    ;;
esac
main="$app/services/$svc/dist/main.js"
if [ ! -f "$main" ]; then
  echo "entrypoint: no service '$svc' in this image (services:$(available))" >&2
  exit 2
fi
shift
exec node "$main" "$@"
