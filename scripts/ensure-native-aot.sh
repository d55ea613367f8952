#!/usr/bin/env bash
# Makes sure the native toolchain Native AOT publishing links with is on this machine: clang and zlib's headers
# (Debian packages clang and zlib1g-dev). The SDK restores the AOT compiler package itself. Idempotent.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v clang >/dev/null 2>&1 || ! dpkg -s zlib1g-dev >/dev/null 2>&1; then
  echo "ensure-native-aot: clang or zlib1g-dev not found; installing the Debian packages clang and zlib1g-dev" >&2
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang zlib1g-dev
  command -v clang >/dev/null 2>&1 || { echo "ensure-native-aot: clang installed but still not found" >&2; exit 1; }
fi

echo "ensure-native-aot: using $(command -v clang) ($(clang --version | head -n 1))"
