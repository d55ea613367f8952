#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, pg_ctl, postgres) are on this machine, so the
# PostgreSQL tests can start their own throw-away server (no Docker). Idempotent: does nothing when they are there.
set -euo pipefail

find_initdb() {
  if command -v initdb >/dev/null 2>&1; then
    command -v initdb
    return 0
  fi
  local candidate
  candidate="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    echo "$candidate"
    return 0
  fi
  return 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! initdb_path="$(find_initdb)"; then
  echo "ensure-postgres: initdb not found; installing the Debian package postgresql" >&2
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
  initdb_path="$(find_initdb)" || { echo "ensure-postgres: postgresql installed but initdb still not found" >&2; exit 1; }
fi

# PostgreSQL refuses to run as root; the tests run initdb/pg_ctl as this user when they run as root.
if ! id -u postgres >/dev/null 2>&1; then
  echo "ensure-postgres: creating the postgres system user" >&2
  as_root useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi

echo "ensure-postgres: using $initdb_path ($("$initdb_path" --version))"
