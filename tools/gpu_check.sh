#!/usr/bin/env bash
# The whole GPU path in one command: builds with CUDA (or takes a bundle), runs the GPU tests
# (kernels against the CPU in every weight format FP8 included, the executor's CUDA device, the
# offloading invariant with dense products and attention on the GPU, NCCL), the GPU benchmarks
# and end-to-end runs (the default model, an FP8 checkpoint), and prints
# a short table (also written to gpu_check.md in the build folder or bundle, and to $OUT when
# that is set).
#
# Usage: tools/gpu_check.sh [--no-build | --bundle DIR] [--mixtral | --mixtral-only]
#   --no-build    use the binaries already in the build folder
#   --bundle DIR  use the binaries and libraries tools/gpu_bundle.sh packed (machines that cannot
#                 install our Debian packages or should not spend their time building); DIR may
#                 also be its .tar.xz, unpacked under /tmp
#   --mixtral     also decode a Mixtral-8x7B-shaped model (synthetic weights, routing replayed
#                 from the shared traces) with a 24 GiB GPU budget (dense weights, KV cache, scratch
#                 and expert slots: --gpu-mem 24GiB), beside transformers + accelerate offloading with
#                 max_memory 24GiB (scripts/bench_accelerate.py): needs ~100 GB of host memory and
#                 several minutes
#   --mixtral-only  just that (a second device call after the first ran the rest)
# Environment: MOE_GPU_TEST_TIMEOUT (s per test binary), MOE_MIXTRAL_TIMEOUT (s), MOE_MIXTRAL_FLAGS
# (more flags for its `moe bench decode`, e.g. --json for the engine's statistics), MOE_ACCELERATE=0
# (skip the accelerate baseline).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
do_build=1
mixtral=0
checks=1
bundle=""
while (($#)); do
  case "$1" in
    --no-build) do_build=0 ;;
    --bundle)
      bundle="${2:?--bundle needs a folder or its .tar.xz}"
      if [[ -f "$bundle" ]]; then  # tar's xz, else Python's (an image without xz-utils)
        mkdir -p /tmp/moe-gpu-bundle
        tar xJf "$bundle" -C /tmp/moe-gpu-bundle 2>/dev/null ||
          python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$bundle" /tmp/moe-gpu-bundle
        bundle=/tmp/moe-gpu-bundle/.gpu-bundle
      fi
      bundle="$(cd "$bundle" && pwd)"; do_build=0; shift ;;
    --mixtral) mixtral=1 ;;
    --mixtral-only) mixtral=1; checks=0 ;;
    *) echo "gpu_check: unknown option $1 (--no-build, --bundle DIR, --mixtral, --mixtral-only)" >&2; exit 2 ;;
  esac
  shift
done
if ((do_build)); then
  MOE_BUILD_DIR="$build" "$root/scripts/build.sh" -DMOE_CUDA=ON -DMOE_BUILD_TESTS=ON
fi
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no GPU is visible (nvidia-smi finds none); nothing to check" >&2
  exit 2
fi
if [[ -n "$bundle" ]]; then
  bin="$bundle/bin"
  tests=("$bin"/gpu_*_test)
  work="$bundle"
  # The bundle's Debian libraries, then CUDA's: the toolkit's, or the pip wheels' beside PyTorch.
  cuda_libs="$(python3 - 2>/dev/null <<'PY' || true
import importlib.util, os
for name in ("nvidia.nccl", "nvidia.cublas", "nvidia.cuda_runtime", "nvidia.cu13"):
    spec = importlib.util.find_spec(name)
    if spec and spec.submodule_search_locations:
        for base in spec.submodule_search_locations:
            if os.path.isdir(os.path.join(base, "lib")):
                print(os.path.join(base, "lib"))
PY
)"
  export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:$(echo "$cuda_libs" | paste -sd: -)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export MOE_SOURCE_DIR="$root"
  export MOE_CACHE_DIR="${MOE_CACHE_DIR:-/tmp/moe-cache}"  # where `moe run` unpacks the default model
else
  bin="$build/tools"
  tests=("$build"/tests/gpu/gpu_kernels_test "$build"/tests/gpu/gpu_expert_device_test "$build"/tests/gpu/gpu_offload_test
         "$build"/tests/gpu/gpu_nccl_test)
  work="$build"
fi
moe="$bin/moe"
report="$work/gpu_check.md"
tests_log="$work/gpu_tests.log"
status=0
: >"$report"
: >"$tests_log"
# After each stage the report so far goes to $OUT, so a call stopped at its time limit still
# brings back what it measured.
publish() {
  if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then cp "$report" "$tests_log" "$OUT/" 2>/dev/null || true; fi
}
# A bundle built on another image may miss a system library there: say which, and stop.
if ! "$moe" --version >/dev/null 2>&1; then
  {
    echo "gpu_check: $moe does not start on this machine:"
    "$moe" --version 2>&1 | head -3
    for b in "$moe" "${tests[@]}"; do ldd "$b" 2>&1 | grep -E "not found|version" | sed "s|^|  $(basename "$b"): |"; done
  } | tee -a "$report" >&2
  publish
  exit 2
fi
if ((checks)); then
  for t in "${tests[@]}"; do
    echo "== $(basename "$t")" >>"$tests_log"
    timeout "${MOE_GPU_TEST_TIMEOUT:-300}" "$t" --gtest_brief=1 >>"$tests_log" 2>&1 || status=$?
    publish
  done
  {
    echo "# GPU check, $(date -u +%Y-%m-%d), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
    echo
    echo "GPU tests:"
    grep -E '^== |^\[  (PASSED|FAILED|SKIPPED) |ERROR SUMMARY' "$tests_log" || true
    echo
    echo '```'
    timeout 240 "$moe" bench gpu || status=$?
    echo '```'
    echo
    echo "End to end, the default model with its experts, dense products and attention on the GPU:"
    echo '```'
    timeout 120 "$moe" run -n 24 --backend cuda 2>&1 | tail -3 || status=$?
    echo '```'
    echo
    echo "End to end, the DeepSeek-V3-layout FP8 fixture (FP8 experts and dense matrices on the GPU; gpu_offload_test checks its logits):"
    echo '```'
    timeout 120 "$moe" bench decode -m "$root/tests/fixtures/deepseek_v3-fp8" --prompt-tokens 8 -n 8 --backend cuda 2>&1 | tail -3 \
      || status=$?
    echo '```'
  } >>"$report" 2>&1  # not a pipe: a subshell would lose `status`
  publish
  # Last, as it is slow: the kernels and the expert device under compute-sanitizer's memcheck,
  # for out-of-bounds and misaligned accesses a passing comparison can hide.
  sanitizer="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)"
  if [[ -n "$sanitizer" ]]; then
    for t in "${tests[@]}"; do
      case "$(basename "$t")" in gpu_kernels_test|gpu_expert_device_test) ;; *) continue ;; esac
      echo "== memcheck $(basename "$t")" >>"$tests_log"
      timeout 200 "$sanitizer" --tool memcheck --error-exitcode 3 "$t" --gtest_brief=1 >>"$tests_log" 2>&1 || status=$?
    done
    { echo; echo "memcheck:"; grep -E '^== memcheck|ERROR SUMMARY|^\[  (PASSED|FAILED) ' "$tests_log" | sed -n '/^== memcheck/,$p'; } >>"$report"
    publish
  fi
fi

if ((mixtral)); then
  trace="$root/../shared/data/traces/mixtral-8x7b/humaneval_2_routing.jsonl"
  [[ -f "$trace" || -z "$bundle" ]] || trace="$bundle/humaneval_2_routing.jsonl"
  config="$root/configs/models/mixtral-8x7b.json"
  {
    echo
    echo "Mixtral-8x7B shape, synthetic bf16 weights (experts sharing bytes), a 24 GiB GPU budget (dense weights, KV"
    echo "cache, scratch and expert slots), all experts in an 86 GiB pinned host pool, routing from $(basename "$trace"):"
    echo '```'
    echo "started $(date -u +%T)"
    # Line-buffered, and the report published as it grows (a background copy every 10 s): a call
    # stopped at its limit still brings back how far the run got (2026-12-04: the first try on an
    # H200 printed nothing in 390 s).
    while sleep 10; do publish; done &
    publisher=$!
    timeout "${MOE_MIXTRAL_TIMEOUT:-420}" stdbuf -oL -eL "$moe" bench decode --config "$config" --shared-expert-bytes \
      --backend cuda --gpu-mem 24GiB --host-mem 86GiB --replay-trace "$trace" --prompt-tokens 16 -n 16 ${MOE_MIXTRAL_FLAGS:-} \
      || status=$?
    echo "ended $(date -u +%T)"
    echo '```'
    publish
    if [[ "${MOE_ACCELERATE:-1}" != 0 ]]; then
      if ! python3 -c "import accelerate" 2>/dev/null && ls "$root"/.cache/wheels/accelerate-*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-deps "$root"/.cache/wheels/accelerate-*.whl >/dev/null 2>&1 || true
      fi
      echo "transformers + accelerate offloading of the same shape, max_memory 24GiB on the GPU for all its weights:"
      echo '```'
      PYTHONUNBUFFERED=1 python3 "$root/scripts/bench_accelerate.py" --config "$config" --gpu-mem 24GiB --prompt-tokens 16 --decode-tokens 4 \
        || status=$?
      echo '```'
    fi
    kill "$publisher" 2>/dev/null || true
  } >>"$report" 2>&1
fi
cat "$report"
publish
exit "$status"
