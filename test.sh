#!/usr/bin/env bash
# Runs every Oncely test on a fresh Debian machine with the .NET 10 SDK: installs what the tests need
# (PostgreSQL server binaries, redis-server and the RabbitMQ server for the tests' own throw-away servers; headless
# Chromium and ChromeDriver for the operator console's browser tests; clang and zlib1g-dev for Native AOT publishing),
# then `dotnet test` over the solution. The hang timeout is per test: the packaging tests pack, restore, build and
# publish (Native AOT) real apps, which takes minutes on a busy 2-core machine.
# Extra arguments go to `dotnet test` (for example: ./test.sh --filter "FullyQualifiedName~Sqlite").
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v dotnet >/dev/null 2>&1; then
  echo "test.sh: the .NET 10 SDK (dotnet) is required: https://dot.net" >&2
  exit 1
fi

bash scripts/ensure-postgres.sh
bash scripts/ensure-redis.sh
bash scripts/ensure-rabbitmq.sh
bash scripts/ensure-chromium.sh
bash scripts/ensure-native-aot.sh

results=".artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

dotnet build Oncely.slnx -c Release
dotnet test Oncely.slnx -c Release --no-build \
  --logger "trx" --logger "console;verbosity=minimal" \
  --results-directory "$results" \
  --blame-hang-timeout 15m \
  "$@"
