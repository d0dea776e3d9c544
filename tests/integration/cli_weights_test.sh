#!/usr/bin/env bash
# --weights on the moe command: a run, an evaluation and a decode benchmark in int8/int4 say the
# format and its error against the checkpoint in their --json documents (and in their text).
# Usage: cli_weights_test.sh PATH/TO/moe SOURCE_DIR
set -uo pipefail
moe="$1"
src="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0

expect_in() {  # expect_in DESCRIPTION FILE PATTERN...: every (extended) pattern occurs in FILE
  local what="$1" file="$2"
  shift 2
  for pattern in "$@"; do
    if ! grep -Eq "$pattern" "$file"; then
      echo "FAIL: $what: no '$pattern' in: $(head -c 600 "$file")"
      failures=$((failures + 1))
      return
    fi
  done
  echo "ok: $what"
}

head -c 6000 "$src/tests/fixtures/trained/web.txt" >"$work/text.txt"

"$moe" run -n 4 --weights int8 --json >"$work/run.json" 2>"$work/run.err"
expect_in "run --json names the format and its error" "$work/run.json" '"format": "int8:g32"' '"rms_rel_error": 0\.0[0-9]'
"$moe" run -n 4 --weights int4:64 --quantize all >"$work/run.txt" 2>"$work/run.err"
expect_in "run prints each part's error" "$work/run.err" 'experts int4:g64 \(converted at load\)' 'dense int4:g64' \
  'lm-head int4:g64' 'relative RMS error [0-9.]+%'
"$moe" eval --text "$work/text.txt" --weights int8 --json >"$work/eval.json" 2>"$work/eval.err"
expect_in "eval --json gives the checkpoint's perplexity beside" "$work/eval.json" '"reference_perplexity": [0-9]' \
  '"top1_agreement": [01]' '"perplexity": [0-9]'
"$moe" eval --text "$work/text.txt" --weights int4 >"$work/eval.txt" 2>"$work/eval.err"
expect_in "eval prints both perplexities" "$work/eval.txt" "perplexity [0-9.]+ with the checkpoint's weights \([+-]"
"$moe" bench decode --prompt-tokens 4 -n 3 --weights int8 --json >"$work/bench.json" 2>"$work/bench.err"
expect_in "bench decode --json compares the decoded logits" "$work/bench.json" '"against_checkpoint"' '"positions": 4' \
  '"max_abs_logit_diff"' '"format": "int8:g32"'
"$moe" bench decode --prompt-tokens 4 -n 3 --weights int4 >"$work/bench.txt" 2>"$work/bench.err"
expect_in "bench decode prints the error" "$work/bench.txt" 'top-1 agreement [0-9.]+%' 'relative RMS error'
"$moe" bench decode --prompt-tokens 4 -n 3 --weights int4 --gpu-mem 1MiB,all >"$work/budgets.txt" 2>"$work/bench.err"
expect_in "bench decode at budgets prints the error" "$work/budgets.txt" 'experts int4:g32 \(converted at load\)'
"$moe" run -n 4 --weights int4 --gpu-mem 1MiB >"$work/offload.txt" 2>"$work/offload.err"
expect_in "an offloaded run's slots hold the format" "$work/offload.err" 'cache slots of .* \(int4:g32 experts\)'

# --activations int8 (the lossy int8 dot products): the same tokens at any expert budget; bad
# values and the cuda backend refused with one line.
"$moe" run -n 4 --activations int4 >"$work/act.txt" 2>"$work/act.err"; rc=$?
expect_in "a bad --activations is refused (exit $rc)" "$work/act.err" "activations must be exact, int8 or bf16, not 'int4'"
"$moe" run -n 4 --weights int8 --activations int8 --backend cuda >"$work/act.txt" 2>"$work/act.err"
expect_in "--activations int8 with the cuda backend is refused" "$work/act.err" "runs on the CPU kernels only"
same_at_one_mib() {  # same_at_one_mib NAME ARGS...: the run's text resident = at a 1 MiB expert budget
  local name="$1"; shift
  "$moe" run -n 8 "$@" >"$work/$name.txt" 2>"$work/$name.err"
  "$moe" run -n 8 "$@" --gpu-mem 1MiB >"$work/$name-offload.txt" 2>"$work/$name-offload.err"
  if [[ -s "$work/$name.txt" ]] && cmp -s "$work/$name.txt" "$work/$name-offload.txt"; then
    echo "ok: $* gives the same tokens at a 1 MiB budget"
  else
    echo "FAIL: $* runs differ: $(head -c 300 "$work/$name.txt") | $(head -c 300 "$work/$name-offload.txt") | $(tail -2 "$work/$name-offload.err")"
    failures=$((failures + 1))
  fi
}
if grep -q avx512_vnni /proc/cpuinfo; then
  same_at_one_mib a8 --weights int4 --activations int8
else
  "$moe" run -n 4 --weights int8 --activations int8 >"$work/act.txt" 2>"$work/act.err"
  expect_in "--activations int8 without AVX512-VNNI is refused" "$work/act.err" "needs a CPU with AVX512-VNNI"
fi

# --activations bf16 (bf16 weights, here the embedded model's, meet bf16-rounded activations):
# the same tokens at a 1 MiB expert budget as resident; refused with one line elsewhere.
if grep -q avx512_bf16 /proc/cpuinfo; then
  same_at_one_mib a16 --activations bf16
  "$moe" bench decode --prompt-tokens 4 -n 3 --activations bf16 --json >"$work/a16.json" 2>"$work/a16b.err"
  expect_in "a bf16-activation run names its mode and its error against the exact mode" "$work/a16.json" \
    '"activations": ?"bf16"' '"against_checkpoint"'
else
  "$moe" run -n 4 --activations bf16 >"$work/act.txt" 2>"$work/act.err"
  expect_in "--activations bf16 without AVX512-BF16 is refused" "$work/act.err" "needs a CPU with AVX512-BF16"
fi
"$moe" run -n 4 --activations bf16 --backend cuda >"$work/act.txt" 2>"$work/act.err"
expect_in "--activations bf16 with the cuda backend is refused" "$work/act.err" "runs on the CPU kernels only"

if [[ $failures -ne 0 ]]; then
  echo "$failures case(s) failed"
  exit 1
fi
