#!/usr/bin/env bash
# Makes sure the RabbitMQ server (Debian package rabbitmq-server, with its Erlang runtime and epmd) is on this machine,
# so the Oncely.MassTransit tests can start their own throw-away broker (no Docker, no system service: the tests run
# /usr/lib/rabbitmq/bin/rabbitmq-server with a private node name, ports, cookie and data directory). Idempotent.
set -euo pipefail

server=/usr/lib/rabbitmq/bin/rabbitmq-server

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ! -x "$server" ] || ! command -v epmd >/dev/null 2>&1; then
  echo "ensure-rabbitmq: $server not found; installing the Debian package rabbitmq-server" >&2
  as_root apt-get update
  # The package's own service is not needed (and may not start inside a container): the tests start a private broker.
  as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y --no-install-recommends rabbitmq-server
  [ -x "$server" ] || { echo "ensure-rabbitmq: rabbitmq-server installed but $server is still missing" >&2; exit 1; }
fi

echo "ensure-rabbitmq: using $server ($(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo 'version unknown'))"
