#!/usr/bin/env bash
# Packs every packable project of the solution (Oncely.slnx: the libraries and tools under src/, the project template
# under templates/) into artifacts/ as .nupkg with its .snupkg symbols. One version for all, from Directory.Build.props.
#   ./scripts/pack.sh                          -> artifacts/*.0.3.0-preview.1.nupkg
#   ./scripts/pack.sh -o /tmp/feed             -> another folder
#   ./scripts/pack.sh -p:VersionSuffix=ci.42   -> another pre-release label (any further argument goes to dotnet pack)
#   ./scripts/pack.sh --no-build               -> pack what the last Release build produced (the packaging tests do)
# Test, sample and benchmark projects are not packable (IsPackable=false), so they are skipped by dotnet pack itself.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/artifacts"
configuration=Release
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o|--output) out="$2"; shift 2 ;;
    -c|--configuration) configuration="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 MSBUILDDISABLENODEREUSE=1
# Packing the solution packs each project whose IsPackable is true, whatever its name: a new src/ project or tool is
# packed without changing this script.
dotnet pack "$root/Oncely.slnx" -c "$configuration" -o "$out" "${args[@]+"${args[@]}"}"
echo "pack.sh: packages in $out:"
ls -1 "$out" | grep -E '\.(nupkg|snupkg)$'
