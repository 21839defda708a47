#!/usr/bin/env bash
# Install Debian's chromium for rerate's browser tests (Playwright drives it with executable_path).
# Run by `make test`; without root or without the package the browser tests are skipped, loudly.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "chromium is missing and this is not root: the browser tests will be skipped" >&2
  echo "(as root: scripts/install-chromium.sh, or apt-get install chromium)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends chromium; then
  apt-get update && apt-get install -y --no-install-recommends chromium || {
    echo "could not install chromium: the browser tests will be skipped" >&2
    exit 0
  }
fi
chromium --version
