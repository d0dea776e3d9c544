#!/usr/bin/env bash
# Bad input to the moe command: every case must exit with the documented code (1 runtime error,
# 2 bad usage) and say one line on stderr, never crash or leave a partial output file.
# Usage: cli_errors_test.sh PATH/TO/moe SOURCE_DIR
set -uo pipefail
moe="$1"
src="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0

expect() {  # expect CODE DESCRIPTION -- command...
  local want="$1" what="$2"
  shift 3
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  local lines
  lines=$(grep -vc '^note: ' "$work/err")
  if [[ $got -ne $want ]]; then
    echo "FAIL: $what: exit $got, expected $want; stderr: $(head -c 300 "$work/err")"
    failures=$((failures + 1))
  elif [[ $want -eq 1 && $lines -ne 1 ]]; then
    echo "FAIL: $what: $lines lines on stderr, expected one: $(head -c 300 "$work/err")"
    failures=$((failures + 1))
  else
    echo "ok: $what: $(grep -v '^note: ' "$work/err" | head -1)"
  fi
}

model="$src/configs/models/mixtral-8x7b.json"
printf 'MOETRACE\x01\0\0\0\0\0\0\0\xff\xff' >"$work/truncated.trace"
printf '{"problem_id": 0, "layer": 0}\n' >"$work/bad.jsonl"
printf 'layer_id,token_id,expert_0\n0,0,zero\n' >"$work/bad.csv"
printf 'MOEPLAN1garbage' >"$work/bad.plan"
printf 'name: x\n' >"$work/bad.yaml"
printf '{"problem_id": 0, "layer": 0, "token_idx": 0, "experts": [1, 0]}\n' >"$work/tiny.jsonl"
for layer in $(seq 0 31); do  # one token of a Mixtral-8x7B-shaped trace
  printf '{"problem_id": 0, "layer": %d, "token_idx": 0, "experts": [7, 0]}\n' "$layer"
done >"$work/mixtral.jsonl"

expect 2 "unknown subcommand" -- "$moe" frobnicate
expect 2 "missing required option" -- "$moe" plan --model "$model"
expect 1 "truncated trace" -- "$moe" inspect "$work/truncated.trace"
expect 1 "malformed JSONL" -- "$moe" trace import "$work/bad.jsonl" -o "$work/out.trace"
expect 1 "malformed CSV" -- "$moe" trace import "$work/bad.csv" -o "$work/out.trace"
[[ -e "$work/out.trace" || -n "$(compgen -G "$work/out.trace.partial*")" ]] && { echo "FAIL: a failed import left a file"; failures=$((failures + 1)); }
expect 1 "malformed plan" -- "$moe" inspect "$work/bad.plan"
expect 1 "hardware profile without sections" -- "$moe" plan --model "$model" --trace "$work/tiny.jsonl" --hardware "$work/bad.yaml" -o "$work/p.plan"
expect 1 "unknown hardware profile" -- "$moe" plan --model "$model" --trace "$work/tiny.jsonl" --hardware no-such-gpu -o "$work/p.plan"
expect 1 "trace of another model" -- "$moe" plan --model "$model" --trace "$work/tiny.jsonl" --hardware rtx4090-24gb -o "$work/p.plan"
[[ -e "$work/p.plan" ]] && { echo "FAIL: a failed plan left a file"; failures=$((failures + 1)); }
expect 1 "impossible KV cache" -- "$moe" plan --model "$model" --trace "$work/mixtral.jsonl" --hardware rtx4090-24gb --batch 64 --context 32768 -o "$work/p.plan"
expect 1 "expert budget below one expert" -- "$moe" run -n 2 --gpu-mem 1KiB
expect 1 "unknown routing" -- "$moe" run -n 2 --routing sparse
expect 1 "unknown predictor" -- "$moe" run -n 2 --gpu-mem 1GiB --prefetch psychic
expect 2 "unknown backend" -- "$moe" run -n 2 --backend tpu
expect 1 "shared expert bytes without synthetic weights" -- "$moe" bench decode -n 1 --shared-expert-bytes
expect 1 "unknown weight format" -- "$moe" run -n 2 --weights int3
expect 1 "group size not a multiple of 8" -- "$moe" run -n 2 --weights int8:12
expect 1 "group size not dividing the hidden size" -- "$moe" run -n 2 --weights int8:48
expect 1 "unknown part to quantise" -- "$moe" run -n 2 --weights int8 --quantize attention
expect 1 "parts to quantise without a format" -- "$moe" run -n 2 --quantize all
# --backend cuda: a GPU budget is checked against the model before any GPU is touched; a GPU
# computes the experts where there is one, otherwise one line saying so.
if ! "$moe" run -n 1 --backend cuda 2>&1 | grep -q "no CUDA backend"; then
  expect 1 "GPU budget below the dense weights and one expert" -- "$moe" run -n 2 --backend cuda --gpu-mem 1MiB
fi
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  expect 1 "cuda backend without a GPU" -- "$moe" run -n 2 --backend cuda
fi

# Issue 21's cases on the paths of a run: the context, an empty --model, a full stdout, empty
# budgets, JSON of text cut inside a UTF-8 character.
long_prompt="$(printf 'word %.0s' $(seq 1 1100))"
expect 1 "a prompt past the model's context" -- "$moe" run -p "$long_prompt" -n 4
expect 1 "new tokens past the model's context" -- "$moe" run -p "hello" -n 2000
expect 2 "an empty --model" -- "$moe" run --model '' -n 1
expect 1 "stdout that cannot be written" -- sh -c "'$moe' run -n 3 >/dev/full"
expect 1 "empty --gpu-mem budgets" -- "$moe" bench decode --gpu-mem , -n 1
expect 1 "a bad --gpu-mem budget" -- "$moe" bench decode --gpu-mem 1MiB,,abc -n 1
if "$moe" run -p "日本語" -n 3 --json 2>"$work/err" | python3 -c 'import json,sys; json.load(sys.stdin)'; then
  echo "ok: JSON of text ending inside a UTF-8 character"
else
  echo "FAIL: JSON of text ending inside a UTF-8 character: $(head -c 300 "$work/err")"
  failures=$((failures + 1))
fi

# Careless overwrites: an output over its own input, or inside the model folder it packs.
mkdir -p "$work/po" && cp "$src/tests/fixtures/qwen3_moe/"* "$work/po/"
cp "$work/po/model.safetensors" "$work/po.orig"
expect 1 "pack into the model folder" -- "$moe" pack --model "$work/po" -o "$work/po/model.safetensors"
cmp -s "$work/po/model.safetensors" "$work/po.orig" || { echo "FAIL: the model was overwritten"; failures=$((failures + 1)); }
expect 1 "trace import over its input" -- "$moe" trace import "$work/tiny.jsonl" -o "$work/tiny.jsonl"
grep -q problem_id "$work/tiny.jsonl" || { echo "FAIL: the trace input was overwritten"; failures=$((failures + 1)); }

# moe verify: a good store passes, a cut one is refused in one line.
if "$moe" pack --model "$src/tests/fixtures/qwen3_moe" -o "$work/good.moe" >/dev/null 2>&1 &&
   "$moe" verify "$work/good.moe" --json 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["ok"] else 1)'; then
  echo "ok: moe verify passes a good store"
else
  echo "FAIL: moe verify on a good store"
  failures=$((failures + 1))
fi
head -c 100000 "$work/good.moe" >"$work/cut.moe"
expect 1 "moe verify of a cut store" -- "$moe" verify "$work/cut.moe"

if [[ $failures -ne 0 ]]; then
  echo "$failures case(s) failed"
  exit 1
fi
