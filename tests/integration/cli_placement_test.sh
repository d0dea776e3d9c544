#!/usr/bin/env bash
# moe trace import / plan / sim end to end (issue 20): per-layer CSV folders make a trace of
# their layers, the trace oracle is reported as a bound, hits are split into ready and late.
# Usage: cli_placement_test.sh PATH/TO/moe SOURCE_DIR
set -uo pipefail
moe="$1"
src="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0

check() {  # check DESCRIPTION TEXT FILE: FILE holds TEXT
  if grep -qF -- "$2" "$3"; then
    echo "ok: $1"
  else
    echo "FAIL: $1: no \"$2\" in: $(head -c 400 "$3")"
    failures=$((failures + 1))
  fi
}

gates="$src/tests/fixtures/per_layer_gates"
"$moe" trace import "$gates/layer_0" "$gates/layer_1" "$gates/layer_2" --top-k 2 -o "$work/gates.trace" >"$work/out" 2>&1
check "per-layer folders make a three-layer trace" "3 layers x 4 experts" "$work/out"
"$moe" trace import "$gates/layer_1/gates.csv" --layer 1 --layers 3 --top-k 2 -o "$work/one.trace" >"$work/out" 2>&1
check "--layer for one per-layer file" "3 layers x 4 experts" "$work/out"

# A Mixtral-8x7B-shaped trace: 24 tokens, 32 layers, top-2 (a fixed pseudo-random routing).
model="$src/configs/models/mixtral-8x7b.json"
for token in $(seq 0 23); do
  for layer in $(seq 0 31); do
    a=$(((token * 7 + layer * 3) % 8))
    b=$(((a + 1 + (token + layer) % 7) % 8))
    printf '{"problem_id": 0, "layer": %d, "token_idx": %d, "experts": [%d, %d]}\n' "$layer" "$token" "$a" "$b"
  done
done >"$work/mixtral.jsonl"
"$moe" plan --model "$model" --trace "$work/mixtral.jsonl" --hardware rtx4090-24gb --explain -o "$work/p.plan" >"$work/out" 2>&1
check "plan --explain splits ready and late hits" "ready hits" "$work/out"
"$moe" plan --model "$model" --trace "$work/mixtral.jsonl" --hardware rtx4090-24gb --prefetch oracle -o "$work/o.plan" >"$work/out" 2>&1
check "a plan with the oracle says it is a bound" "upper bound" "$work/out"
sim=("$moe" sim --plan "$work/p.plan" --trace "$work/mixtral.jsonl" --hardware rtx4090-24gb --model "$model")
"${sim[@]}" --prefetch oracle >"$work/out" 2>&1
check "sim text: the oracle is a bound" "upper bound" "$work/out"
check "sim text: late hits" "late hits" "$work/out"
"${sim[@]}" --prefetch oracle --json >"$work/out" 2>&1
check "sim --json: upper_bound" '"upper_bound": true' "$work/out"
check "sim --json: ready_hits" '"ready_hits": ' "$work/out"
check "sim --json: late_hits" '"late_hits": ' "$work/out"
"${sim[@]}" --cache-slots 0 --json >"$work/out" 2>&1
check "sim --cache-slots 0: no cache hits" '"ready_hits": 0,' "$work/out"
"${sim[@]}" --cache-slots 64 --cache-scope layer --json >"$work/out" 2>&1
check "sim --cache-scope layer" '"cache_scope": "layer"' "$work/out"

# Real shapes with made-up routing: DeepSeek-V3 on one RTX 4090 with 512 GB of host memory fits
# in its released FP8 (the default: its config's quantization_config) or with 8-bit dense
# weights; in bf16 the planner says why it cannot.
"$moe" trace synth --model "$src/configs/models/deepseek-v3.json" --sequences 2 --tokens 8 -o "$work/v3.trace" >"$work/out" 2>&1
check "trace synth makes DeepSeek-V3's shape" "58 layers x 256 experts (top-8)" "$work/out"
"$moe" plan --model "$src/configs/models/deepseek-v3.json" --trace "$work/v3.trace" --hardware rtx4090-24gb-512gb-host \
  --formats bf16 --dense-format bf16 -o "$work/v3.plan" >"$work/out" 2>&1
check "DeepSeek-V3 in bf16 does not fit one RTX 4090" "does not fit on rtx4090-24gb-512gb-host" "$work/out"
"$moe" plan --model "$src/configs/models/deepseek-v3.json" --trace "$work/v3.trace" --hardware rtx4090-24gb-512gb-host \
  --explain -o "$work/v3.plan" >"$work/out" 2>&1
check "DeepSeek-V3 as released (FP8) on one RTX 4090" "dense weights in fp8" "$work/out"
check "with FP8 experts" "fp8 on GPU, fp8 offloaded" "$work/out"
"$moe" plan --model "$src/configs/models/deepseek-v3.json" --trace "$work/v3.trace" --hardware rtx4090-24gb-512gb-host \
  --formats int8 --dense-format int8 --explain -o "$work/v3.plan" >"$work/out" 2>&1
check "DeepSeek-V3 with 8-bit dense weights on one RTX 4090" "dense weights in int8" "$work/out"
check "and its held-out figure" "Held out: planned on 1 sequences" "$work/out"

# A scaled-down shape for speed runs here: the first layers of a config, synthetic weights.
"$moe" bench decode --config "$src/configs/models/mixtral-32l-mini.json" --layers 2 --prompt-tokens 2 -n 2 --json \
  >"$work/out" 2>&1
check "bench decode --layers keeps the first layers" "(first 2 layers)" "$work/out"
"$moe" bench decode --config "$src/configs/models/mixtral-32l-mini.json" --layers 33 -n 1 >"$work/out" 2>&1
check "--layers beyond the model is refused" "has 32 layers: keep 1 to 32 of them, not 33" "$work/out"

# bench decode --predict replays the engine's own predictor in the simulator: the gate kinds
# from the guesses recorded in the run, the learnt ones from the same profile trace; only a
# union falls back to the trace oracle, and says the prediction is a bound.
tiny="$src/models/mixtral-tiny"
printf 'The river rose in the night and\ndef parse(line):\n' >"$work/prompts.txt"
"$moe" profile -m "$tiny" --prompts "$work/prompts.txt" -n 4 -o "$work/tiny.trace" >/dev/null 2>&1
for p in next-layer gate:2 history; do
  "$moe" bench decode -m "$tiny" --gpu-mem 600KiB --predict --prefetch "$p" --profile-trace "$work/tiny.trace" \
    --prompt-tokens 4 -n 4 --json 2>&1 | tr -d ' \n' >"$work/out"
  check "bench decode --predict replays --prefetch $p itself" '"predicted_is_bound":false' "$work/out"
done
"$moe" bench decode -m "$tiny" --gpu-mem 600KiB --predict --prefetch next-layer+history --profile-trace "$work/tiny.trace" \
  --prompt-tokens 4 -n 4 >"$work/out" 2>&1
check "a union it cannot replay is a bound" "the trace oracle stands in, so the prediction is a bound" "$work/out"

if [[ $failures -ne 0 ]]; then
  echo "$failures case(s) failed"
  exit 1
fi
