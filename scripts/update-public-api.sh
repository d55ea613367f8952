#!/usr/bin/env bash
# Records the current public API of every library under src/ in its PublicAPI.Unshipped.txt (run it after a change to
# the public surface, or after merging branches that changed it, then review the diff and commit it).
#   ./scripts/update-public-api.sh                 every library under src/ (a new project gets its two files)
#   ./scripts/update-public-api.sh src/Oncely.Http only these projects (folders or .csproj files)
# New public symbols (RS0016) are added by the analyzer's own code fix through `dotnet format analyzers`; symbols that
# are gone (RS0017) are read from a build's diagnostics: an Unshipped line is deleted, a Shipped one is recorded as
# *REMOVED* in Unshipped (the analyzer's convention). Tools (OutputType Exe) and template packages have no API to
# freeze: they get no PublicAPI files. Ends with a build that must show no RS00xx diagnostic.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

projects=()
if [ $# -gt 0 ]; then
  for arg in "$@"; do
    if [ -d "$arg" ]; then projects+=("$(find "$arg" -maxdepth 1 -name '*.csproj' | head -n 1)"); else projects+=("$arg"); fi
  done
else
  while IFS= read -r p; do projects+=("$p"); done < <(find src -name '*.csproj' -not -path '*/bin/*' -not -path '*/obj/*' | sort)
fi

libraries=()
for p in "${projects[@]}"; do
  kind="$(dotnet msbuild "$p" -getProperty:OutputType -getProperty:PackageType -getProperty:OncelySourceProject 2>/dev/null | tr -d '\r')"
  if echo "$kind" | grep -qi '"OutputType": *"Exe"' || echo "$kind" | grep -qi '"PackageType": *"Template"'; then
    echo "update-public-api: $p is a tool or template: no public API files"
    continue
  fi
  libraries+=("$p")
  dir="$(dirname "$p")"
  for f in PublicAPI.Shipped.txt PublicAPI.Unshipped.txt; do
    [ -f "$dir/$f" ] || { printf '#nullable enable\n' > "$dir/$f"; echo "update-public-api: created $dir/$f"; }
  done
done

diagnostics() { # project -> RS00xx lines of a build that does not stop at warnings (the project itself recompiled,
  # so its warnings are reported again; its references were built by the first pass below)
  dotnet build "$1" -c Release --no-incremental --no-dependencies -p:TreatWarningsAsErrors=false -p:WarningsAsErrors= -clp:NoSummary 2>&1 \
    | grep -E 'warning RS00[0-9][0-9]' | sort -u || true
}

# First pass: every library built (warnings allowed), so each later build can recompile one project alone.
for p in "${libraries[@]}"; do
  dotnet build "$p" -c Release -p:TreatWarningsAsErrors=false -p:WarningsAsErrors= -v q -clp:NoSummary -nologo >/dev/null 2>&1 || true
done

for p in "${libraries[@]}"; do
  dir="$(dirname "$p")"
  echo "update-public-api: $p"
  # Gone symbols first: their lines would otherwise stay and fail the build (RS0017).
  while IFS= read -r symbol; do
    [ -n "$symbol" ] || continue
    if grep -qxF -- "$symbol" "$dir/PublicAPI.Unshipped.txt"; then
      grep -vxF -- "$symbol" "$dir/PublicAPI.Unshipped.txt" > "$dir/PublicAPI.Unshipped.txt.new" || true
      mv "$dir/PublicAPI.Unshipped.txt.new" "$dir/PublicAPI.Unshipped.txt"
      echo "  removed (unshipped): $symbol"
    elif grep -qxF -- "$symbol" "$dir/PublicAPI.Shipped.txt" && ! grep -qxF -- "*REMOVED*$symbol" "$dir/PublicAPI.Unshipped.txt"; then
      echo "*REMOVED*$symbol" >> "$dir/PublicAPI.Unshipped.txt"
      echo "  removed (shipped, recorded as *REMOVED*): $symbol"
    fi
  done < <(diagnostics "$p" | grep 'RS0017' | sed -E "s/.*Symbol '(.*)' is part of the declared API.*/\1/" | sort -u)
  # New symbols: the analyzer's code fix writes them to PublicAPI.Unshipped.txt.
  dotnet format analyzers "$p" --diagnostics RS0016 RS0017 RS0036 RS0037 --severity info -v q
done

status=0
for p in "${libraries[@]}"; do
  left="$(diagnostics "$p")"
  if [ -n "$left" ]; then
    echo "update-public-api: $p still has public API diagnostics (fix them by hand):" >&2
    echo "$left" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "update-public-api: public API files up to date ($(git -C "$root" diff --stat -- '*PublicAPI.*.txt' | tail -n 1))"
exit $status
