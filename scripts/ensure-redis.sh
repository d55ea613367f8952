#!/usr/bin/env bash
# Makes sure redis-server and redis-cli are on this machine, so the Redis tests can start their own throw-away servers
# and cluster (no Docker). Idempotent: does nothing when they are there.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "ensure-redis: redis-server or redis-cli not found; installing the Debian package redis-server (with redis-tools)" >&2
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server redis-tools
  command -v redis-server >/dev/null 2>&1 || { echo "ensure-redis: redis-server installed but still not found" >&2; exit 1; }
fi

# The Debian package also starts a system-wide server on port 6379; the tests never use it (they start their own).
echo "ensure-redis: using $(command -v redis-server) ($(redis-server --version | head -n 1))"
