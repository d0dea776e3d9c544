#!/usr/bin/env bash
# The prediction report of docs/PERF.md (issue 20, item 2): routing predictors trained on one
# shared Mixtral-8x7B trace and judged on another (moe predict eval), then replayed in the
# simulator against a plan made from the training trace; and the recorded next-layer gate of a
# trained tiny model (moe profile) judged the same way. Prints markdown.
# Usage: scripts/predict_report.sh [path/to/moe] [hardware profile]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
moe="${1:-$root/build/tools/moe}"
hw="${2:-rtx4090-24gb}"
model="$root/configs/models/mixtral-8x7b.json"
traces="$root/../shared/data/traces/mixtral-8x7b"
text="$root/../shared/data/text"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(' | '.join(str(round(d[k],3)) if isinstance(d[k],float) else str(d[k]) for k in sys.argv[1:]))" "$@"; }

# humaneval_routing repeats much of humaneval_2_routing's problem 0 (47% of its (token, layer)
# choices are the same), so the out-of-sample pairs are routing_raw against humaneval_2_routing.
for t in humaneval_2_routing routing_raw; do
  "$moe" trace import "$traces/$t.jsonl" -o "$work/$t.trace" --model-name mixtral-8x7b >/dev/null
done
for pair in "routing_raw humaneval_2_routing" "humaneval_2_routing routing_raw"; do
  set -- $pair
  echo "### moe predict eval --train $1 --test $2"
  echo
  echo '```'
  "$moe" predict eval --train "$work/$1.trace" --test "$work/$2.trace" | sed -n 2,8p
  echo '```'
  echo
done

echo "### moe sim: planned and trained on routing_raw, replayed on humaneval_2_routing (half the expert memory as cache)"
echo
"$moe" plan --model "$model" --trace "$work/routing_raw.trace" --hardware "$hw" --pinned-share 0.5 -o "$work/half.plan" >/dev/null
echo "| admission | policy | prefetch | tokens/s | GPU hit rate | late hit rate | stall fraction | prefetch precision | prefetch recall | stopped |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for admission in all frequency; do
  for policy in lru belady; do
    for prefetch in none oracle popularity stats history history:2; do
      echo "| $admission | $policy | $prefetch | $("$moe" sim --plan "$work/half.plan" --trace "$work/humaneval_2_routing.trace" --hardware "$hw" --model "$model" --policy "$policy" --admission "$admission" --prefetch "$prefetch" --profile-trace "$work/routing_raw.trace" --json | field tokens_per_second gpu_hit_rate late_hit_rate stall_fraction prefetch_precision prefetch_recall prefetches_cancelled) |"
    done
  done
done
echo

# A trained tiny model's own gates: prompts from the held-out last 10% of each corpus.
for f in arxiv b3g c4 github_oss_with_stack wikipedia; do
  n=$(wc -l <"$text/$f.txt")
  awk -v n="$n" 'NR > n * 0.92 && length($0) > 60' "$text/$f.txt" | cut -c1-160 | sed -n 1,6p >>"$work/train.txt"
  awk -v n="$n" 'NR > n * 0.97 && length($0) > 60' "$text/$f.txt" | cut -c1-160 | sed -n 1,6p >>"$work/test.txt"
done
for m in btx-tiny bam-tiny ds-moe-tiny mixtral-tiny; do
  "$moe" profile -m "$root/models/$m" --prompts "$work/train.txt" -n 24 --guesses-ranked 6 -o "$work/$m-train.trace" >/dev/null
  "$moe" profile -m "$root/models/$m" --prompts "$work/test.txt" -n 24 --guesses-ranked 6 -o "$work/$m-test.trace" >/dev/null
  ks="1 2"
  [[ $m == mixtral-tiny ]] && ks="1 2 3 4 5 6"
  for k in $ks; do
    echo "### $m: moe predict eval -k $k (trained on 30 prompts, tested on 30 others)"
    echo
    echo '```'
    "$moe" predict eval --train "$work/$m-train.trace" --test "$work/$m-test.trace" -k "$k" | sed -n 2,8p
    echo '```'
    echo
  done
done

# The 16-expert model replayed in the simulator with its recorded gate guesses. The RTX 4090
# profile with 0.254 GiB of GPU memory: the planner's scratch takes the rest, so no expert is
# pinned and 32 of its 128 experts fit the cache (the tiny model would otherwise fit whole).
m=mixtral-tiny
sed 's/^  memory_gib: 24$/  memory_gib: 0.254/; s/^name: .*/name: rtx4090-tiny-gpu/' "$root/configs/hardware/rtx4090-24gb.yaml" >"$work/small.yaml"
"$moe" plan --model "$root/models/$m" --trace "$work/$m-train.trace" --hardware "$work/small.yaml" --pinned-share 0 --context 64 \
  -o "$work/$m.plan" >/dev/null
echo "### moe sim on $m: planned and trained on the training prompts' trace, replayed on the test prompts' (32 cache slots of its 128 experts, admission all)"
echo
echo "| prefetch | guesses | tokens/s | GPU hit rate | late hit rate | stall fraction | prefetch precision | prefetch recall | prefetches | stopped |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for prefetch in none oracle popularity history gate gate:2; do
  for g in 2 4; do
    [[ ( $prefetch == none || $prefetch == oracle ) && $g == 4 ]] && continue
    echo "| $prefetch | $g | $("$moe" sim --plan "$work/$m.plan" --trace "$work/$m-test.trace" --hardware "$work/small.yaml" --model "$root/models/$m" --cache-slots 32 --admission all --prefetch "$prefetch" --guesses "$g" --profile-trace "$work/$m-train.trace" --json | field tokens_per_second gpu_hit_rate late_hit_rate stall_fraction prefetch_precision prefetch_recall prefetches prefetches_cancelled) |"
  done
done
