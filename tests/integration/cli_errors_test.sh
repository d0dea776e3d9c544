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

says() {  # says CODE DESCRIPTION TEXT -- command...: as expect, and stderr holds TEXT
  local text="$3" before=$failures
  expect "$1" "$2" "${@:4}"
  if [[ $failures -eq $before ]] && ! grep -qF -- "$text" "$work/err"; then
    echo "FAIL: $2: stderr does not say \"$text\": $(head -c 300 "$work/err")"
    failures=$((failures + 1))
  fi
}

warns() {  # warns DESCRIPTION TEXT -- command...: succeeds, and stderr holds TEXT
  local what="$1" text="$2"
  shift 3
  if "$@" >"$work/out" 2>"$work/err" && grep -qF -- "$text" "$work/err"; then
    echo "ok: $what: $(grep -F -- "$text" "$work/err" | head -1)"
  else
    echo "FAIL: $what: no warning \"$text\" (or it failed): $(head -c 300 "$work/err")"
    failures=$((failures + 1))
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

# moe inspect DIR checks the weights, not only config.json.
mkdir -p "$work/six" && cp "$src/tests/fixtures/qwen3_moe/"* "$work/six/"
python3 -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); c["num_experts"]=8; json.dump(c, open(p, "w"))' "$work/six/config.json"
expect 1 "inspect: the config names more experts than the file holds" -- "$moe" inspect "$work/six"
mkdir -p "$work/torn" && cp "$src/tests/fixtures/qwen3_moe/"* "$work/torn/"
head -c 1000 "$src/tests/fixtures/qwen3_moe/model.safetensors" >"$work/torn/model.safetensors"
expect 1 "inspect: a truncated safetensors" -- "$moe" inspect "$work/torn"

# trace import never writes a trace its own reader refuses.
printf '{"problem_id": 0, "layer": 0, "token_idx": 0, "experts": [1073741823, 0]}\n' >"$work/huge-expert.jsonl"
expect 1 "trace import of an expert id past what traces hold" -- "$moe" trace import "$work/huge-expert.jsonl" -o "$work/huge.trace"

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

# Hostile input: numeric flags say their range in words (CLI11 printed the largest double in 309
# digits) and refuse NaN and inf; values accepted without a word; errors about something else.
says 2 "a negative -n" "--max-new-tokens: must be a whole number from 0 to 1048576; got -1" -- "$moe" run -n -1
says 2 "an infinite temperature" "--temperature: must be a number from 0 to 100; got inf" -- "$moe" run --temperature inf
says 2 "a NaN top-p" "--top-p: must be a number above 0 and at most 1; got nan" -- "$moe" run --top-p nan
says 2 "no tokens to score" "--max-tokens: must be a whole number from 1 to 1073741824; got 0" -- \
  "$moe" eval --max-tokens 0 --text "$src/README.md"
says 2 "a seed past 64 bits" "--seed: must be a whole number from 0 to 18446744073709551615; got 18446744073709551616" -- \
  "$moe" run --seed 18446744073709551616
says 2 "a negative HOBBIT threshold" "--hobbit-t1: must be a number from 0 to 2; got -5" -- "$moe" run --hobbit-t1 -5
says 2 "a NaN HOBBIT threshold" "--hobbit-t2: must be a number from 0 to 2; got nan" -- "$moe" run --hobbit-t2 nan
says 2 "a fractional batch size" "--max-batch: must be a whole number from 1 to 4096; got 1.5" -- \
  "$moe" run --max-batch 1.5
says 2 "a count with a leading zero (CLI11 read it as octal)" "--max-new-tokens: must be a whole number from 0 to 1048576; got 010" -- \
  "$moe" run -n 010
says 1 "an infinite routing threshold" "the threshold must be a finite number" -- "$moe" run -n 1 --routing threshold:inf
says 2 "planning for no GPU" "--devices: must be a whole number from 1 to 1024; got 0" -- \
  "$moe" plan --model "$model" --trace "$work/mixtral.jsonl" --hardware rtx4090-24gb --devices 0 -o "$work/p.plan"
says 2 "a NaN pinned share" "--pinned-share: must be a number from 0 to 1; got nan" -- \
  "$moe" plan --model "$model" --trace "$work/mixtral.jsonl" --hardware rtx4090-24gb --pinned-share nan -o "$work/p.plan"
says 2 "a negative expert count" "--experts: must be a whole number from 1 to 65536; got -1" -- \
  "$moe" trace import "$work/tiny.jsonl" --experts -1 -o "$work/out.trace"
printf '{"problem_id": 0, "layer": 0, "token_idx": -1, "experts": [1, 0]}\n' >"$work/negative.jsonl"
says 1 "a negative token position" "the position -1 is negative" -- "$moe" trace import "$work/negative.jsonl" -o "$work/out.trace"
printf '{"problem_id": 0, "layer": 0, "token_idx": 0, "experts": [1, 0], "gating_probs": [0.5, -0.5]}\n' >"$work/gates.jsonl"
says 1 "a negative gate" "not a finite non-negative number" -- "$moe" trace import "$work/gates.jsonl" -o "$work/out.trace"
printf '{"problem_id": 0, "layer": 0, "token_idx": 0, "experts": []}\n' >"$work/empty.jsonl"
says 1 "a trace of empty choices only" "no routing decision names an expert" -- \
  "$moe" trace import "$work/empty.jsonl" -o "$work/out.trace"
warns "MOE_THREADS that is no number" "MOE_THREADS=abc is not a number of threads from 1 to 256" -- \
  env MOE_THREADS=abc "$moe" run -n 1
warns "MOE_LOG that is no level" "MOE_LOG=bogus is not trace, debug" -- env MOE_LOG=bogus "$moe" run -n 1
python3 - "$work/bad-shape.npy" <<'PY'
import struct, sys
header = "{'descr': '<i4', 'fortran_order': False, 'shape': (1, x, 1), }"
header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(4))
PY
says 1 "a .npy shape that is no number" "the .npy shape has 'x'" -- "$moe" trace import "$work/bad-shape.npy" -o "$work/out.trace"
printf 'MOESTORE\x01\0\0\0' >"$work/x.store"
says 1 "a store given as a model" "is an expert store, not a model folder" -- "$moe" pack --model "$work/x.store" -o "$work/y.store"
says 1 "text that never ends" "is larger than 256.00 MiB" -- "$moe" eval --text /dev/zero
# The context is checked before the engine sizes anything by it (here a GPU's memory split).
says 1 "a prompt past the context, before the GPU split" "pass the model's context" -- \
  "$moe" run -p "$long_prompt" -n 4 --backend cuda --gpu-mem 1MiB
"$moe" run -n 2 --trace-out "$work/short.trace" >/dev/null 2>&1
says 1 "a run past the end of the replayed trace" "the trace to replay holds the routing of" -- \
  "$moe" run -n 16 --replay-trace "$work/short.trace"

# The simulator's trace oracle is not a predictor: next-layer there is refused by name (issue 20).
says 1 "plan with the trace oracle under a predictor's name" "--prefetch oracle" -- \
  "$moe" plan --model "$model" --trace "$work/mixtral.jsonl" --hardware rtx4090-24gb --prefetch next-layer -o "$work/p.plan"
if "$moe" plan --model "$model" --trace "$work/mixtral.jsonl" --hardware rtx4090-24gb -o "$work/ok.plan" >/dev/null 2>&1; then
  says 1 "sim with the trace oracle under a predictor's name" "--prefetch oracle" -- \
    "$moe" sim --plan "$work/ok.plan" --trace "$work/mixtral.jsonl" --hardware rtx4090-24gb --model "$model" --prefetch next-layer
else
  echo "FAIL: moe plan on the one-token Mixtral trace"
  failures=$((failures + 1))
fi
# Per-layer CSV gate files with layer_id 0 in each and no layer in their names.
mkdir -p "$work/gates"
printf 'layer_id,token_id,expert_0,expert_1\n0,0,0.3,0.7\n' >"$work/gates/a.csv"
printf 'layer_id,token_id,expert_0,expert_1\n0,0,0.6,0.4\n' >"$work/gates/b.csv"
says 1 "per-layer CSV files that all claim layer 0" "claims layer 0" -- \
  "$moe" trace import "$work/gates/a.csv" "$work/gates/b.csv" --top-k 1 -o "$work/gates.trace"
says 1 "a folder of per-layer CSV files that all claim layer 0" "claims layer 0" -- \
  "$moe" trace import "$work/gates" --top-k 1 -o "$work/gates.trace"
says 1 "--layer for several files" "--layer names the layer of one file" -- \
  "$moe" trace import "$work/gates/a.csv" "$work/gates/b.csv" --layer 2 --top-k 1 -o "$work/gates.trace"

if [[ $failures -ne 0 ]]; then
  echo "$failures case(s) failed"
  exit 1
fi
