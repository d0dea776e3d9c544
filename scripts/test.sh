#!/usr/bin/env bash
# Builds the engine and its tests and runs the whole suite. GPU tests skip, saying why, on a
# machine without a GPU. Arguments are passed to ctest (e.g. scripts/test.sh -L unit).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build.sh" -DMOE_BUILD_TESTS=ON
cd "${MOE_BUILD_DIR:-$root/build}"
ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@"
