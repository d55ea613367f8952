#!/usr/bin/env bash
# Runs the Oncely load test (bench/Oncely.LoadTest): Kestrel variants in one .NET process, driven from outside by wrk.
# Installs what it needs when missing (wrk; the PostgreSQL server binaries unless --skip-postgres; redis-server unless
# --skip-redis), builds Release,
# then runs the program with this script's arguments, for instance:
#   bash bench/run-load.sh                       # full run; rewrites the generated part of docs/benchmarks.md
#   bash bench/run-load.sh --short --skip-postgres --output /tmp/bench-short.md
# Other options: --no-docs, --repetitions N, --concurrency 1,16,64, --payments-only, --skip-redis, --redis-only,
#   --unprepared (the store prepares nothing),
#   --db-latency-ms N (the PostgreSQL payment variants reach their database through a proxy that holds each send N ms)
# (see docs/benchmarks.md).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v wrk >/dev/null 2>&1; then
  echo "run-load: wrk not found; installing the Debian package wrk" >&2
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk
fi

skip_postgres=false
skip_redis=false
for argument in "$@"; do
  if [ "$argument" = "--skip-postgres" ]; then skip_postgres=true; fi
  if [ "$argument" = "--skip-redis" ]; then skip_redis=true; fi
  if [ "$argument" = "--redis-only" ]; then skip_postgres=true; fi
done
if [ "$skip_postgres" = false ]; then
  bash scripts/ensure-postgres.sh
fi
if [ "$skip_redis" = false ]; then
  bash scripts/ensure-redis.sh
fi

dotnet build bench/Oncely.LoadTest -c Release --nologo -v quiet
exec dotnet bench/Oncely.LoadTest/bin/Release/net10.0/Oncely.LoadTest.dll "$@"
