#!/usr/bin/env bash
# moe run splits one memory limit itself (issue 23): in place when the model fits (or misses by
# less than one step's experts), expert caches and streaming below that, with the same tokens; a limit that cannot hold the dense part, or one
# given beside hand budgets, is refused in one line.
# Usage: cli_auto_tiers_test.sh PATH/TO/moe SOURCE_DIR
set -uo pipefail
moe="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$1" "$2"; }

# bam-tiny: 20 routed experts of 192 KiB, large enough against the runtime's run-to-run spread.
run=("$moe" run --model "$2/models/bam-tiny" -p "Once upon a time" -n 12 --json)
"${run[@]}" --mem-limit 64GiB >"$work/fits.json" 2>"$work/err" || fail "the run under a large limit: $(cat "$work/err")"
[[ "$(field "$work/fits.json" "d['placement']['offload']")" == "False" ]] && echo "ok: a model that fits runs in place" \
  || fail "a model that fits was offloaded: $(head -c 600 "$work/fits.json")"
[[ "$(field "$work/fits.json" "'offload' in d")" == "False" ]] || fail "the in-place run has an offloading stack"

# The limit that leaves room for 3.5 experts beside the dense part, KV and runtime: fewer than a
# step's 4 (4 layers, top-1), so the page cache would cycle and the experts are offloaded: one
# streams, two get slots (the runtime, the anonymous pages at start, varies by a few KiB).
p="d['placement']"
half=$(field "$work/fits.json" "$p['dense_bytes'] + $p['kv_bytes'] + $p['runtime_bytes'] + 7 * $p['expert_bytes'] // 2")
"${run[@]}" --mem-limit "$half" >"$work/three.json" 2>"$work/err" || fail "the run below one step's experts: $(cat "$work/err")"
if [[ -s "$work/three.json" ]]; then
  [[ "$(field "$work/three.json" "$p['offload']")" == "True" ]] && echo "ok: below the model's size the experts are offloaded" \
    || fail "not offloaded below the model's size: $(head -c 600 "$work/three.json")"
  slots=$(field "$work/three.json" "$p['device_expert_bytes'] // $p['expert_bytes']")
  [[ $slots -ge 1 && $slots -le 3 ]] && echo "ok: $slots of 20 experts get a slot" || fail "$slots slots, not 1 to 3"
  [[ "$(field "$work/three.json" "d['tokens']")" == "$(field "$work/fits.json" "d['tokens']")" ]] \
    && echo "ok: the same tokens in place and offloaded" || fail "offloaded tokens differ"
  [[ "$(field "$work/three.json" "d['offload']['setup'].startswith('automatic')")" == "True" ]] || fail "setup does not say automatic"
fi

# Given recorded routing, the slots split between the trace's hottest experts and a cache as
# held-out routing says, with the same tokens.
printf 'The history of science\nIn the beginning the world\nA recipe for bread needs\nOnce upon a time\n' >"$work/prompts"
"$moe" profile --model "$2/models/bam-tiny" --prompts "$work/prompts" -o "$work/bam.trace" >/dev/null 2>&1 || fail "moe profile"
"${run[@]}" --mem-limit "$half" --profile-trace "$work/bam.trace" >"$work/pinned.json" 2>"$work/err" || fail "run with a trace: $(cat "$work/err")"
if [[ -s "$work/pinned.json" ]]; then
  [[ "$(field "$work/pinned.json" "'pinned_per_device' in $p and any('held-out' in w for w in $p['why'])")" == "True" ]] \
    && echo "ok: a routing trace decides the pinned share on held-out routing" || fail "no slot split: $(head -c 600 "$work/pinned.json")"
  [[ "$(field "$work/pinned.json" "d['tokens']")" == "$(field "$work/fits.json" "d['tokens']")" ]] \
    && echo "ok: the same tokens with the trace's pins" || fail "tokens differ with the trace's pins"
fi

# Room for one step's experts (4) and a little more: in place, each layer's chosen experts read
# ahead; with --prefetch, the predictor's guesses for later layers too, with the same tokens.
ahead=$(field "$work/fits.json" "$p['dense_bytes'] + $p['kv_bytes'] + $p['runtime_bytes'] + 11 * $p['expert_bytes'] // 2")
"${run[@]}" --mem-limit "$ahead" --prefetch next-layer >"$work/ahead.json" 2>"$work/err" || fail "the read-ahead run: $(cat "$work/err")"
if [[ -s "$work/ahead.json" ]]; then
  [[ "$(field "$work/ahead.json" "not $p['offload'] and any('next-layer guesses for later layers are read ahead' in w for w in $p['why'])")" == "True" ]] \
    && echo "ok: in place under the limit, the next layers' guessed experts are read ahead" \
    || fail "no predicted read-ahead: $(head -c 600 "$work/ahead.json")"
  [[ "$(field "$work/ahead.json" "d['tokens']")" == "$(field "$work/fits.json" "d['tokens']")" ]] \
    && echo "ok: the same tokens with the predicted read-ahead" || fail "tokens differ with the predicted read-ahead"
fi
"${run[@]}" --mem-limit 64GiB --prefetch next-layer >"$work/idle.json" 2>"$work/err" || fail "--prefetch on a model that fits: $(cat "$work/err")"
[[ -s "$work/idle.json" && "$(field "$work/idle.json" "any('has nothing to do' in w for w in $p['why'])")" == "True" ]] \
  && echo "ok: --prefetch on a model that fits says it has nothing to do" || fail "an idle --prefetch is not explained"

"$moe" run --model "$2/models/bam-tiny" -p "Once upon a time" -n 12 --mem-limit "$half" --explain >"$work/out" 2>&1 || fail "--explain run failed"
grep -qF "[placement:" "$work/out" && grep -qF "does not fit" "$work/out" && echo "ok: --explain says why" \
  || fail "--explain: $(head -c 600 "$work/out")"

"$moe" run -p "hi" -n 2 --mem-limit 1MiB >"$work/out" 2>&1
rc=$?
[[ $rc -ne 0 && $(grep -c . "$work/out") -le 2 && $(grep -c "^error: " "$work/out") -eq 1 ]] && grep -qF "cannot hold" "$work/out" && echo "ok: a limit below the dense part is refused" \
  || fail "1 MiB limit (rc $rc): $(head -c 600 "$work/out")"

"$moe" run -p "hi" -n 2 --mem-limit 1GiB --gpu-mem 1MiB >"$work/out" 2>&1
rc=$?
[[ $rc -ne 0 ]] && grep -qF "chooses the split itself" "$work/out" && echo "ok: --mem-limit beside --gpu-mem is refused" \
  || fail "--mem-limit with --gpu-mem (rc $rc): $(head -c 600 "$work/out")"

if [[ $failures -ne 0 ]]; then
  echo "$failures case(s) failed"
  exit 1
fi
