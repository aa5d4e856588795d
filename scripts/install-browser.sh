#!/usr/bin/env bash
# Headless Chromium for the rollout status-page browser test (test/integration/rollout/status-page.test.ts).
# Debian's `chromium` package: browser builds downloaded by Playwright itself are not reachable here.
# Safe to repeat; does nothing when /usr/bin/chromium exists.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
  exit 0
fi
SUDO=''
if [ "$(id -u)" != 0 ]; then SUDO='sudo'; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
/usr/bin/chromium --version
