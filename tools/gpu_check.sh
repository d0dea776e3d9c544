#!/usr/bin/env bash
# The whole GPU path in one command: builds with CUDA, runs the GPU tests and the GPU
# benchmarks, and prints a short table (also written to gpu_check.md in the build folder).
# Usage: tools/gpu_check.sh [--no-build]   (--no-build: use the binaries already in the build folder)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
if [[ "${1:-}" != "--no-build" ]]; then
  MOE_BUILD_DIR="$build" "$root/scripts/build.sh" -DMOE_CUDA=ON -DMOE_BUILD_TESTS=ON
fi
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no GPU is visible (nvidia-smi finds none); nothing to check" >&2
  exit 2
fi
report="$build/gpu_check.md"
tests_log="$build/gpu_tests.log"
status=0
{
  "$build/tests/gpu/gpu_kernels_test" --gtest_brief=1 || status=$?
  "$build/tests/gpu/gpu_experts_test" --gtest_brief=1 || status=$?
} >"$tests_log" 2>&1
{
  echo "# GPU check, $(date -u +%Y-%m-%d), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
  echo
  echo "GPU tests: $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$tests_log" | tr '\n' ' ')"
  echo
  echo '```'
  "$build/tools/moe" bench gpu
  echo '```'
} | tee "$report"
exit "$status"
