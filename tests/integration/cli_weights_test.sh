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

if [[ $failures -ne 0 ]]; then
  echo "$failures case(s) failed"
  exit 1
fi
