#!/usr/bin/env bash
# moe pack on the embedded default model's folder (models/ds-moe-tiny, DS-MoE: experts cut from
# the fused c_fc and c_proj): the store runs with the folder's tokens and logits, bit for bit, in
# place, offloaded by hand budgets and under the automatic tiers; its int8 copies give the bits
# of int8 converted at load; the embedded model itself offloads under a small --mem-limit; gpt-oss's
# experts get int8/int4 copies, whose error moe inspect prints.
# Usage: cli_pack_families_test.sh PATH/TO/moe SOURCE_DIR
set -uo pipefail
moe="$1"
src="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$1" "$2"; }
p="d['placement']"

folder="$src/models/ds-moe-tiny"
"$moe" pack --model "$folder" -o "$work/ds.moe" --formats bf16,int8,int4 --json >"$work/pack.json" 2>"$work/err" \
  || fail "moe pack: $(cat "$work/err")"
[[ "$(field "$work/pack.json" "sorted(d['expert_bytes'])")" == "['bf16', 'int4:g128', 'int8:g128']" ]] \
  && echo "ok: DS-MoE packs bf16, int8 and int4 experts" || fail "pack formats: $(cat "$work/pack.json")"

# same NAME FLAGS...: a run of the store under FLAGS gives the folder's in-place tokens and logits.
run=(-p "Once upon a time" -n 12 --json)
"$moe" run --model "$folder" "${run[@]}" --logits-out "$work/folder.logits" >"$work/folder.json" 2>"$work/err" \
  || fail "the folder's run: $(cat "$work/err")"
same() {
  local name="$1"
  shift
  if ! "$moe" run "${run[@]}" "$@" --logits-out "$work/$name.logits" >"$work/$name.json" 2>"$work/err"; then
    fail "$name: $(head -c 600 "$work/err")"
    return
  fi
  if [[ "$(field "$work/$name.json" "d['tokens']")" == "$(field "$work/folder.json" "d['tokens']")" ]] &&
     cmp -s "$work/$name.logits" "$work/folder.logits"; then
    echo "ok: $name gives the folder's tokens and logits"
  else
    fail "$name: tokens or logits differ from the folder's"
  fi
}
same "the store in place" --model "$work/ds.moe"
same "the store offloaded to 3 slots" --model "$work/ds.moe" --gpu-mem 200KiB --host-mem 100KiB
same "the store offloaded over 2 devices" --model "$work/ds.moe" --gpu-mem 70KiB --devices 2 --prefetch next-layer
[[ "$(field "$work/the store offloaded over 2 devices.json" "'read from the store' in d['offload']['setup']")" == "True" ]] \
  && echo "ok: the offloaded experts are read from the store" || fail "not read from the store"

# Under the automatic tiers, a limit with room for 10 of the 16 experts (the streaming buffers
# take 4 of them) beside the dense part, KV and runtime offloads.
few_experts() {  # few_experts MODEL_FLAGS...: the limit, from a run under a large one
  "$moe" run "$@" "${run[@]}" --mem-limit 64GiB >"$work/fits.json" 2>"$work/err" || fail "64GiB: $(cat "$work/err")"
  field "$work/fits.json" "$p['dense_bytes'] + $p['kv_bytes'] + $p['runtime_bytes'] + 10 * $p['expert_bytes']"
}
few=$(few_experts --model "$work/ds.moe")
same "the store under --mem-limit $few" --model "$work/ds.moe" --mem-limit "$few"
[[ -s "$work/the store under --mem-limit $few.json" && \
   "$(field "$work/the store under --mem-limit $few.json" "$p['offload']")" == "True" ]] \
  && echo "ok: the store is offloaded under a small limit" || fail "the store was not offloaded under $few"

# The embedded default model (the same DS-MoE) offloads under a small limit with its in-place tokens.
"$moe" run "${run[@]}" --logits-out "$work/default.logits" >"$work/default.json" 2>"$work/err" || fail "default: $(cat "$work/err")"
cmp -s "$work/default.logits" "$work/folder.logits" || fail "the embedded model's logits differ from its folder's"
few=$(few_experts)
"$moe" run "${run[@]}" --mem-limit "$few" --logits-out "$work/default-few.logits" >"$work/default-few.json" 2>"$work/err" \
  || fail "default under $few: $(cat "$work/err")"
if [[ -s "$work/default-few.json" ]]; then
  [[ "$(field "$work/default-few.json" "$p['offload']")" == "True" ]] \
    && echo "ok: the embedded model is offloaded under a small --mem-limit" \
    || fail "the embedded model was not offloaded: $(field "$work/default-few.json" "$p['why']")"
  cmp -s "$work/default-few.logits" "$work/folder.logits" && echo "ok: with its in-place logits" || fail "offloaded logits differ"
fi

# The store's int8 copies: the bits of int8 converted at load from the folder, in place and offloaded.
"$moe" run --model "$folder" "${run[@]}" --weights int8:128 --logits-out "$work/int8.logits" >"$work/int8.json" 2>"$work/err" \
  || fail "int8 from the folder: $(cat "$work/err")"
for budget in "" "--gpu-mem 100KiB"; do
  "$moe" run --model "$work/ds.moe" "${run[@]}" --weights int8:128 $budget --logits-out "$work/copies.logits" \
    >"$work/copies.json" 2>"$work/err" || fail "int8 copies $budget: $(cat "$work/err")"
  [[ "$(field "$work/copies.json" "d['weights']['parts'][0]['origin']")" == "store copies" ]] || fail "the copies were not used"
  cmp -s "$work/copies.logits" "$work/int8.logits" && echo "ok: the store's int8 copies ${budget:-in place} give int8's logits" \
    || fail "int8 copies ${budget:-in place}: logits differ"
done

# gpt-oss's experts (MXFP4 as released, bf16 transposed) get int8/int4 copies; moe inspect prints
# each format's error against the checkpoint: none for the released one, int8's under 1%, int4's more.
for fixture in gpt_oss-mxfp4 gpt_oss; do
  "$moe" pack --model "$src/tests/fixtures/$fixture" -o "$work/$fixture.moe" --formats int8,int4 --group-size 32 \
    >/dev/null 2>"$work/err" || fail "pack $fixture: $(cat "$work/err")"
  "$moe" inspect "$work/$fixture.moe" --json >"$work/inspect.json" 2>"$work/err" || fail "inspect $fixture: $(cat "$work/err")"
  f="d['formats']"
  native=mxfp4
  [[ $fixture == gpt_oss ]] && native=bf16
  [[ "$(field "$work/inspect.json" "sorted($f) == sorted(['$native', 'int4:g32', 'int8:g32'])")" == "True" &&
     "$(field "$work/inspect.json" "$f['$native']['max_rel_error'] == 0 < $f['int8:g32']['max_rel_error'] < 0.01 < \
        $f['int4:g32']['max_rel_error']")" == "True" ]] \
    && echo "ok: $fixture packs int8/int4 copies and inspect prints their error" || fail "$fixture: $(cat "$work/inspect.json")"
  "$moe" inspect "$work/$fixture.moe" | grep -q "^int8:g32 .* error against the checkpoint: max [1-9]" \
    || fail "$fixture: moe inspect does not print int8's error"
done

if [[ $failures -ne 0 ]]; then
  echo "$failures case(s) failed"
  exit 1
fi
