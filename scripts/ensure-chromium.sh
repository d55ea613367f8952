#!/usr/bin/env bash
# Makes sure headless Chromium and its matching ChromeDriver are on this machine (Debian packages chromium and
# chromium-driver), so the operator console's browser tests can drive a real browser. Idempotent.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "ensure-chromium: chromium or chromedriver not found; installing the Debian packages chromium and chromium-driver" >&2
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver
  command -v chromedriver >/dev/null 2>&1 || { echo "ensure-chromium: chromium-driver installed but chromedriver still not found" >&2; exit 1; }
fi

echo "ensure-chromium: using $(command -v chromium) ($(chromium --version 2>/dev/null | head -n 1))"
