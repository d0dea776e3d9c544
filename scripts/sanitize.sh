#!/usr/bin/env bash
# Builds the engine and its tests with AddressSanitizer and UndefinedBehaviorSanitizer into
# build-asan/ and runs the whole suite there (GPU tests skip without a GPU). Slow: a full build.
# Usage: scripts/sanitize.sh [ctest arguments]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install_deps.sh"
build="$root/build-asan"
venv="$root/build/test-venv"
extra=()
[[ -x "$venv/bin/python" ]] && extra=(-DMOE_TEST_PYTHON="$venv/bin/python")
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOE_SANITIZE=ON -DMOE_CUDA=OFF \
  -DMOE_BUILD_TESTS=ON "${extra[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$(nproc)" --timeout 1800 "$@"
