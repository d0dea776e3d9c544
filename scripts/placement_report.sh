#!/usr/bin/env bash
# The placement report of docs/PERF.md: the shared Mixtral-8x7B traces replayed against plans
# for a Mixtral-8x7B-shaped model on an RTX 4090 24 GB profile. Prints markdown tables.
# Usage: scripts/placement_report.sh [path/to/moe] [hardware profile]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
moe="${1:-$root/build/tools/moe}"
hw="${2:-rtx4090-24gb}"
model="$root/configs/models/mixtral-8x7b.json"
traces="$root/../shared/data/traces/mixtral-8x7b"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(' | '.join(str(round(d[k],3)) if isinstance(d[k],float) else str(d[k]) for k in sys.argv[1:]))" "$@"; }

for t in humaneval_2_routing humaneval_routing routing_raw; do
  "$moe" trace import "$traces/$t.jsonl" -o "$work/$t.trace" --model-name mixtral-8x7b >/dev/null
done
# Plan from one trace, replay another: the planner never sees the routing it is judged on.
plan_trace="$work/humaneval_2_routing.trace"
echo "### Plans (planned on humaneval_2_routing, replayed on routing_raw; policy lru, no prefetch)"
echo
echo "| plan | pinned on GPU | tokens/s (sim) | GPU hit rate | stall fraction |"
echo "|---|---|---|---|---|"
for s in uniform frequency optimized; do
  "$moe" plan --model "$model" --trace "$plan_trace" --hardware "$hw" --strategy "$s" -o "$work/$s.plan" >/dev/null
  pinned=$("$moe" inspect "$work/$s.plan" --json | python3 -c "import json,sys; d=json.load(sys.stdin); print(sum(1 for e in d['experts'] if e.get('home','TIER_GPU')=='TIER_GPU'))")
  echo "| $s | $pinned | $("$moe" sim --plan "$work/$s.plan" --trace "$work/routing_raw.trace" --hardware "$hw" --model "$model" --json | field tokens_per_second gpu_hit_rate stall_fraction) |"
done
"$moe" plan --model "$model" --trace "$plan_trace" --hardware "$hw" --formats bf16,int8,int4 -o "$work/int4.plan" >/dev/null
echo "| optimized, int8/int4 allowed (lossy) | - | $("$moe" sim --plan "$work/int4.plan" --trace "$work/routing_raw.trace" --hardware "$hw" --model "$model" --json | field tokens_per_second gpu_hit_rate stall_fraction) |"
echo
echo "### Policies and prefetchers (a plan with half the expert memory as cache; every trace)"
echo
"$moe" plan --model "$model" --trace "$plan_trace" --hardware "$hw" --pinned-share 0.5 -o "$work/half.plan" >/dev/null
echo "| trace | policy | prefetch | tokens/s | cache hit rate | stall fraction | prefetch precision | prefetch recall |"
echo "|---|---|---|---|---|---|---|---|"
for t in humaneval_2_routing humaneval_routing routing_raw; do
  # The statistical predictors learn from another trace than the one replayed (moe sim refuses
  # the same one); the oracle reads the replayed trace's future and is a bound.
  learn="$plan_trace"; [[ "$work/$t.trace" == "$plan_trace" ]] && learn="$work/routing_raw.trace"
  for policy in lru lfu multi belady; do
    for prefetch in none oracle stats history; do
      echo "| $t | $policy | $prefetch | $("$moe" sim --plan "$work/half.plan" --trace "$work/$t.trace" --hardware "$hw" --model "$model" --policy "$policy" --prefetch "$prefetch" --profile-trace "$learn" --json | field tokens_per_second cache_hit_rate stall_fraction prefetch_precision prefetch_recall) |"
    done
  done
done
