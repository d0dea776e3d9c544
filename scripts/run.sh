#!/usr/bin/env bash
# Builds the engine and runs `moe run` on the embedded default model. Arguments are passed to
# `moe run` (e.g. scripts/run.sh --prompt "Once upon a time" -n 64).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build.sh"
exec "${MOE_BUILD_DIR:-$root/build}/tools/moe" run "$@"
