#!/usr/bin/env bash
# Records the current public API of every library under src/ in its PublicAPI.Unshipped.txt (run it after a change to
# the public surface, or after merging branches that changed it, then review the diff and commit it).
#   ./scripts/update-public-api.sh                 every library under src/ (a new project gets its two files)
#   ./scripts/update-public-api.sh src/Oncely.Http only these projects (folders or .csproj files)
# It reads the analyzer's diagnostics from one build of each project: a new public symbol (RS0016) is added to
# PublicAPI.Unshipped.txt exactly as the message names it; a symbol that is gone (RS0017) has its Unshipped line
# deleted, or, when it had shipped, is recorded as *REMOVED* in Unshipped (the analyzer's convention). Unshipped is
# kept sorted (ordinal). (`dotnet format analyzers <proj> --diagnostics RS0016 --severity info` applies the
# analyzer's own code fix too, but skips a project whose build shows other API warnings, and is slower.) Tools (OutputType Exe) and template packages have no API to
# freeze: they get no PublicAPI files. Ends with a build that must show no RS00xx diagnostic.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 MSBUILDDISABLENODEREUSE=1

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

sorted() { # file: keep the first line (#nullable enable), sort the rest (ordinal), no duplicates
  { head -n 1 "$1"; tail -n +2 "$1" | grep -v '^$' | LC_ALL=C sort -u; } > "$1.new" && mv "$1.new" "$1"
}

for p in "${libraries[@]}"; do
  dir="$(dirname "$p")"
  echo "update-public-api: $p"
  found="$(diagnostics "$p")"
  # Gone symbols (RS0017): an Unshipped line is deleted, a Shipped one recorded as *REMOVED*.
  while IFS= read -r symbol; do
    [ -n "$symbol" ] || continue
    if grep -qxF -- "$symbol" "$dir/PublicAPI.Unshipped.txt"; then
      grep -vxF -- "$symbol" "$dir/PublicAPI.Unshipped.txt" > "$dir/PublicAPI.Unshipped.txt.new" || true
      mv "$dir/PublicAPI.Unshipped.txt.new" "$dir/PublicAPI.Unshipped.txt"
      echo "  - $symbol"
    elif grep -qxF -- "$symbol" "$dir/PublicAPI.Shipped.txt" && ! grep -qxF -- "*REMOVED*$symbol" "$dir/PublicAPI.Unshipped.txt"; then
      echo "*REMOVED*$symbol" >> "$dir/PublicAPI.Unshipped.txt"
      echo "  - $symbol (shipped: recorded as *REMOVED*)"
    fi
  done < <(echo "$found" | grep 'RS0017' | sed -E "s/.*Symbol '(.*)' is part of the declared API.*/\1/" | sort -u)
  # New symbols (RS0016): the analyzer's message names each one exactly as the file must list it.
  while IFS= read -r symbol; do
    [ -n "$symbol" ] || continue
    echo "$symbol" >> "$dir/PublicAPI.Unshipped.txt"
    echo "  + $symbol"
  done < <(echo "$found" | grep 'RS0016' | sed -E "s/.*Symbol '(.*)' is not part of the declared (public )?API.*/\1/" | sort -u)
  sorted "$dir/PublicAPI.Unshipped.txt"
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
[ $status -eq 0 ] && echo "update-public-api: public API files up to date ($(git -C "$root" diff --stat -- '*PublicAPI.*.txt' 2>/dev/null | tail -n 1))"
exit $status
