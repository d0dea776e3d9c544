#!/usr/bin/env bash
# The whole GPU path in one command: builds with CUDA, runs the GPU tests (kernels against the
# CPU, the executor's CUDA device, the offloading invariant on the GPU, NCCL), the GPU
# benchmarks and an end-to-end run, and prints a short table (also written to gpu_check.md in
# the build folder, and to $OUT when that is set).
#
# Usage: tools/gpu_check.sh [--no-build] [--mixtral]
#   --no-build  use the binaries already in the build folder
#   --mixtral   also decode a Mixtral-8x7B-shaped model (synthetic weights, routing replayed from
#               the shared traces) with a 24 GiB expert budget, beside transformers + accelerate
#               offloading of the same shape (scripts/bench_accelerate.py): needs ~100 GB of host
#               memory and several minutes
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
do_build=1
mixtral=0
for arg in "$@"; do
  case "$arg" in
    --no-build) do_build=0 ;;
    --mixtral) mixtral=1 ;;
    *) echo "gpu_check: unknown option $arg (--no-build, --mixtral)" >&2; exit 2 ;;
  esac
done
if ((do_build)); then
  MOE_BUILD_DIR="$build" "$root/scripts/build.sh" -DMOE_CUDA=ON -DMOE_BUILD_TESTS=ON
fi
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no GPU is visible (nvidia-smi finds none); nothing to check" >&2
  exit 2
fi
moe="$build/tools/moe"
report="$build/gpu_check.md"
tests_log="$build/gpu_tests.log"
status=0
(cd "$build" && ctest -L gpu --output-on-failure --timeout 900) >"$tests_log" 2>&1 || status=$?
{
  echo "# GPU check, $(date -u +%Y-%m-%d), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
  echo
  echo "GPU tests: $(grep -E 'tests passed|tests failed' "$tests_log" | tail -1)"
  grep -E '^\s+[0-9]+ - .*\((Failed|Skipped|Timeout)\)' "$tests_log" || true
  echo
  echo '```'
  "$moe" bench gpu || status=$?
  echo '```'
  echo
  echo "End to end, the default model with its experts on the GPU:"
  echo '```'
  "$moe" run -n 24 --backend cuda 2>&1 | tail -3 || status=$?
  echo '```'
} 2>&1 | tee "$report"

if ((mixtral)); then
  trace="$root/../shared/data/traces/mixtral-8x7b/humaneval_2_routing.jsonl"
  config="$root/configs/models/mixtral-8x7b.json"
  {
    echo
    echo "Mixtral-8x7B shape, synthetic bf16 weights (experts sharing bytes), 21 GiB of expert slots + 2.75 GiB of"
    echo "dense weights on the GPU, all experts in an 86 GiB pinned host pool, routing from $(basename "$trace"):"
    echo '```'
    "$moe" bench decode --config "$config" --shared-expert-bytes --backend cuda --gpu-mem 21GiB --host-mem 86GiB \
      --replay-trace "$trace" --prompt-tokens 16 -n 16 || status=$?
    echo '```'
    if ! python3 -c "import accelerate" 2>/dev/null && ls "$root"/.cache/wheels/accelerate-*.whl >/dev/null 2>&1; then
      python3 -m pip install -q --no-deps "$root"/.cache/wheels/accelerate-*.whl >/dev/null 2>&1 || true
    fi
    echo "transformers + accelerate offloading of the same shape, max_memory 24GiB on the GPU for all its weights:"
    echo '```'
    python3 "$root/scripts/bench_accelerate.py" --config "$config" --gpu-mem 24GiB --prompt-tokens 16 --decode-tokens 4 \
      || status=$?
    echo '```'
  } 2>&1 | tee -a "$report"
fi
if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then
  cp "$report" "$tests_log" "$OUT/"
fi
exit "$status"
