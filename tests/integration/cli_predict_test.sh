#!/usr/bin/env bash
# moe predict eval and the recorded gate guesses end to end (issue 20, item 2): the predictors
# are judged on a trace they did not learn from (train == test is refused unless asked for),
# `moe profile` records the gate guesses that `moe predict eval` and `moe sim --prefetch gate`
# then judge and replay.
# Usage: cli_predict_test.sh PATH/TO/moe SOURCE_DIR
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
    echo "FAIL: $1: no \"$2\" in: $(head -c 600 "$3")"
    failures=$((failures + 1))
  fi
}
status() {  # status DESCRIPTION WANT GOT
  if [[ "$2" == "$3" ]]; then
    echo "ok: $1"
  else
    echo "FAIL: $1: exit $3, wanted $2"
    failures=$((failures + 1))
  fi
}

# Two traces of 8 layers x 8 experts, top-2, with a layer-to-layer structure (a fixed pseudo-
# random routing) and different sequences.
make_trace() {  # make_trace SEED SEQUENCES
  for problem in $(seq 0 $(($2 - 1))); do
    for token in $(seq 0 39); do
      first=$(((token * 5 + problem * 3 + $1) % 8))
      for layer in $(seq 0 7); do
        a=$(((first + layer * 3) % 8))
        b=$(((a + 1 + (token * $1 + layer) % 7) % 8))
        printf '{"problem_id": %d, "layer": %d, "token_idx": %d, "experts": [%d, %d]}\n' "$problem" "$layer" "$token" "$a" "$b"
      done
    done
  done
}
make_trace 1 3 >"$work/train.jsonl"
make_trace 2 2 >"$work/test.jsonl"

"$moe" predict eval --train "$work/train.jsonl" --test "$work/test.jsonl" >"$work/out" 2>&1
status "predict eval runs" 0 $?
for name in random popularity stats history gate; do check "predict eval prints $name" "$name" "$work/out"; done
check "predict eval: 1 to 3 ahead" "3 ahead" "$work/out"
check "predict eval: no recorded guesses in an imported trace" "not recorded" "$work/out"
"$moe" predict eval --train "$work/train.jsonl" --test "$work/test.jsonl" --json >"$work/out" 2>&1
check "predict eval --json: predictors" '"name": "history"' "$work/out"
check "predict eval --json: recall" '"recall": ' "$work/out"
"$moe" predict eval --help >"$work/out" 2>&1
check "predict eval --help names --in-sample" "--in-sample" "$work/out"

"$moe" predict eval --train "$work/train.jsonl" --test "$work/train.jsonl" >"$work/out" 2>&1
status "train == test is refused" 1 $?
check "train == test: one sentence" "error: --train and --test are the same trace" "$work/out"
cp "$work/train.jsonl" "$work/copy.jsonl"
"$moe" predict eval --train "$work/train.jsonl" --test "$work/copy.jsonl" >"$work/out" 2>&1
status "a copy of the training trace is refused too" 1 $?
"$moe" predict eval --train "$work/train.jsonl" --test "$work/train.jsonl" --in-sample >"$work/out" 2>&1
status "--in-sample allows it" 0 $?
check "--in-sample says so" "in-sample" "$work/out"

# moe profile records the gate guesses; predict eval and sim replay them.
model="$src/models/btx-tiny"
printf 'The cat sat on the mat.\ndef main():\n    return 0\n' >"$work/a.txt"
printf 'In 1905 the theory was published.\nfor i in range(10): print(i)\n' >"$work/b.txt"
"$moe" profile -m "$model" --prompts "$work/a.txt" -n 8 -o "$work/a.trace" >"$work/out" 2>&1
status "profile runs" 0 $?
check "profile records the gate guesses" "gate guesses for 1 to 3 layers ahead" "$work/out"
"$moe" profile -m "$model" --prompts "$work/b.txt" -n 8 -o "$work/b.trace" >"$work/out" 2>&1
"$moe" predict eval --train "$work/a.trace" --test "$work/b.trace" --json >"$work/out" 2>&1
status "predict eval on recorded traces" 0 $?
check "the recorded gate is judged" '"available": true' "$work/out"
"$moe" plan --model "$model" --trace "$work/a.trace" --hardware rtx4090-24gb --pinned-share 0 -o "$work/p.plan" >"$work/out" 2>&1
sim=("$moe" sim --plan "$work/p.plan" --hardware rtx4090-24gb --model "$model" --cache-slots 4)
"${sim[@]}" --trace "$work/b.trace" --prefetch gate >"$work/out" 2>&1
status "sim replays the recorded gate" 0 $?
check "sim --prefetch gate says what it replays" "guesses recorded in the trace" "$work/out"
"${sim[@]}" --trace "$work/b.trace" --prefetch history --profile-trace "$work/a.trace" --json >"$work/out" 2>&1
check "sim --prefetch history learns from --profile-trace" '"training": "learnt from' "$work/out"
"${sim[@]}" --trace "$work/test.jsonl" --prefetch gate >"$work/out" 2>&1
status "sim --prefetch gate without recorded guesses is refused" 1 $?
# Without --profile-trace the learning prefetchers never learn from what they replay.
"${sim[@]}" --trace "$work/b.trace" --prefetch stats >"$work/out" 2>&1
check "sim stats: the replayed trace is split by sequence" "learnt from 1 of the trace's 2 sequences" "$work/out"
"${sim[@]}" --trace "$work/b.trace" --profile-trace "$work/b.trace" --prefetch stats >"$work/out" 2>&1
status "sim: --profile-trace equal to --trace is refused" 1 $?

if [[ $failures -ne 0 ]]; then
  echo "$failures case(s) failed"
  exit 1
fi
