#!/usr/bin/env bash
# `moe` under mpirun (issue 22) on the embedded model: rank 0 alone talks, its tokens and logits
# are the same bits as one process driving all the devices (sampling too: rank 0's token is
# broadcast; --prompts and moe eval too; moe serve with rank 0's scheduler leading the others'),
# and every fault ends the whole
# run within seconds with one clear line: a plan that does not fit the ranks (refused before any
# weight is read), a rank that cannot load, a rank that stops answering (--rank-timeout), a rank
# killed with SIGKILL.
# Usage: cli_ranks_test.sh PATH/TO/moe SOURCE_DIR PATH/TO/mpirun
set -uo pipefail
moe="$1"
src="$2"
mpirun="$3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 MOE_THREADS=1

ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; failures=$((failures + 1)); }
check() {  # check DESCRIPTION TEXT FILE: FILE holds TEXT
  if grep -qF -- "$2" "$3"; then ok "$1"; else bad "$1: no \"$2\" in: $(head -c 600 "$3")"; fi
}
tokens() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens"])' "$1"; }
same_run() {  # same_run DESCRIPTION A B: the same tokens (--json) and the same logits bytes
  if [[ "$(tokens "$2.json")" == "$(tokens "$3.json")" ]] && cmp -s "$2.logits" "$3.logits" && [[ -s "$2.logits" ]]; then
    ok "$1"
  else
    bad "$1: tokens $(tokens "$2.json" 2>&1 | head -c 200) vs $(tokens "$3.json" 2>&1 | head -c 200); logits $(cmp "$2.logits" "$3.logits" 2>&1)"
  fi
}
run_one() {  # run_one NAME ARGS...: one process
  local name="$1"; shift
  "$moe" run -n 12 --json --logits-out "$work/$name.logits" "$@" >"$work/$name.json" 2>"$work/$name.err" || bad "$name: $(tail -3 "$work/$name.err")"
}
run_ranks() {  # run_ranks NAME NP ARGS...: under mpirun
  local name="$1" np="$2"; shift 2
  timeout 120 "$mpirun" -np "$np" "$moe" run -n 12 --json --logits-out "$work/$name.logits" "$@" >"$work/$name.json" 2>"$work/$name.err" ||
    bad "$name: $(tail -5 "$work/$name.err")"
}

# Bit identity: -np 2 and -np 4 against one process with the same devices, at several budgets,
# prefetching, sampling with a seed.
run_one one2 --devices 2 -t 0.9 --seed 5
run_ranks np2 2 -t 0.9 --seed 5
same_run "-np 2 = one process with 2 devices (sampled)" "$work/one2" "$work/np2"
run_one one4 --devices 4 --gpu-mem 600KiB --prefetch next-layer
run_ranks np4 4 --gpu-mem 600KiB --prefetch next-layer
same_run "-np 4, a small cache, prefetching = one process with 4 devices" "$work/one4" "$work/np4"
run_one one4b --devices 4 --gpu-mem 200KiB --miss cpu
run_ranks np2x2 2 --devices 2 --gpu-mem 200KiB --miss cpu
same_run "-np 2 x 2 devices, one slot, misses on the host = one process with 4 devices" "$work/one4b" "$work/np2x2"

# Only rank 0 writes: the text once, the stats line once.
timeout 60 "$mpirun" -np 2 "$moe" run -n 4 -p "Ranks talk" >"$work/text.out" 2>"$work/text.err"
[[ $(grep -c "Ranks talk" "$work/text.out") == 1 ]] && ok "the text is printed once" || bad "text: $(cat "$work/text.out")"
[[ $(grep -c "tok/s decode" "$work/text.err") == 1 ]] && ok "the stats are printed once" || bad "stats: $(cat "$work/text.err")"
check "rank 0 reports the ranks" "[ranks: 2 processes" "$work/text.err"

# Many prompts at once (the scheduler steps the same batches on every rank): the same tokens.
printf 'Once upon a time\nThe market opened\nIn the lab we\n' >"$work/many.txt"
"$moe" run --prompts "$work/many.txt" -n 10 --devices 2 --json >"$work/many1.json" 2>"$work/many1.err"
timeout 60 "$mpirun" -np 2 "$moe" run --prompts "$work/many.txt" -n 10 --json >"$work/many2.json" 2>"$work/many2.err"
same_tokens='import json,sys; t=lambda p: [r["tokens"] for r in json.load(open(p))["results"]]; sys.exit(t(sys.argv[1]) != t(sys.argv[2]))'
python3 -c "$same_tokens" "$work/many1.json" "$work/many2.json" 2>/dev/null && ok "--prompts under -np 2 = one process" ||
  bad "--prompts: $(tail -3 "$work/many2.err")"

# moe eval: the same perplexity; moe serve: refused in one sentence, not hung.
head -c 3000 "$src/tests/fixtures/trained/web.txt" >"$work/web.txt"
"$moe" eval --text "$work/web.txt" --devices 2 --json >"$work/eval1.json" 2>/dev/null
timeout 60 "$mpirun" -np 2 "$moe" eval --text "$work/web.txt" --json >"$work/eval2.json" 2>"$work/eval2.err"
ppl='import json,sys; print(json.load(open(sys.argv[1]))["perplexity"])'
[[ -n "$(python3 -c "$ppl" "$work/eval1.json" 2>/dev/null)" && "$(python3 -c "$ppl" "$work/eval1.json" 2>&1)" == "$(python3 -c "$ppl" "$work/eval2.json" 2>&1)" ]] &&
  ok "eval under -np 2: the same perplexity" || bad "eval: $(tail -3 "$work/eval2.err")"

# moe serve under -np 2: rank 0 serves HTTP, the other rank follows its scheduler. Requests sent
# together (one batch), and one after an idle spell past --rank-timeout (heartbeats keep the
# follower waiting), answer as one process over the same two devices; SIGTERM to rank 0 ends
# every rank cleanly.
port_of() { grep -o '127.0.0.1:[0-9]*' "$1" 2>/dev/null | head -1 | cut -d: -f2; }
wait_port() { for _ in $(seq 300); do [[ -n "$(port_of "$1")" ]] && return 0; sleep 0.1; done; return 1; }
ask='
import json, sys, threading, urllib.request
port, prompts = sys.argv[1], sys.argv[2:]
out = [None] * len(prompts)
def one(i):
    body = json.dumps({"model": "default", "prompt": prompts[i], "max_tokens": 12, "temperature": 0}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body, {"Content-Type": "application/json"})
    out[i] = json.load(urllib.request.urlopen(req, timeout=60))["choices"][0]["text"]
threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps(out))'
"$moe" serve --port 0 --devices 2 >"$work/serve1.out" 2>"$work/serve1.err" &
one_pid=$!
timeout 120 "$mpirun" -np 2 "$moe" serve --port 0 --rank-timeout 1 >"$work/serve2.out" 2>"$work/serve2.err" &
ranks_pid=$!
if wait_port "$work/serve1.out" && wait_port "$work/serve2.out"; then
  python3 -c "$ask" "$(port_of "$work/serve1.out")" "Once upon a time" "The capital of" "def main():" >"$work/ask1.json" 2>&1
  python3 -c "$ask" "$(port_of "$work/serve2.out")" "Once upon a time" "The capital of" "def main():" >"$work/ask2.json" 2>&1
  [[ -s "$work/ask1.json" ]] && cmp -s "$work/ask1.json" "$work/ask2.json" && ok "serve under -np 2: a batch answers as one process" ||
    bad "serve batch: $(head -c 300 "$work/ask1.json") vs $(head -c 300 "$work/ask2.json") $(tail -3 "$work/serve2.err")"
  sleep 3  # idle for three rank timeouts
  python3 -c "$ask" "$(port_of "$work/serve2.out")" "Once upon a time" >"$work/ask3.json" 2>&1
  [[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0])' "$work/ask3.json" 2>&1)" == \
     "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0])' "$work/ask1.json" 2>&1)" ]] &&
    ok "serve under -np 2: answers after idling past --rank-timeout" || bad "serve after idling: $(head -c 300 "$work/ask3.json") $(tail -3 "$work/serve2.err")"
  for p in $(pgrep -f "moe serve --port 0 --rank-timeout 1"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=0$' && kill -TERM "$p"
  done
  wait "$ranks_pid"
  rc=$?
  [[ $rc == 0 ]] && ok "serve under -np 2: SIGTERM to rank 0 ends every rank, exit 0" || bad "serve under -np 2 exit $rc: $(tail -3 "$work/serve2.err")"
else
  bad "serve did not start: $(tail -3 "$work/serve1.err") / $(tail -3 "$work/serve2.err")"
  kill "$ranks_pid" 2>/dev/null
fi
kill "$one_pid" 2>/dev/null
wait "$one_pid" 2>/dev/null
# A following rank killed while rank 0 serves: the whole job ends within seconds, naming it.
timeout 60 "$mpirun" -np 2 "$moe" serve --port 0 --rank-timeout 5 >"$work/serve3.out" 2>"$work/serve3.err" &
ranks_pid=$!
if wait_port "$work/serve3.out"; then
  for p in $(pgrep -f "moe serve --port 0 --rank-timeout 5"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=1$' && kill -KILL "$p"
  done
  start=$SECONDS
  wait "$ranks_pid"
  rc=$?
  ((rc != 0 && rc != 124 && SECONDS - start < 20)) && ok "serve: a killed follower ends the job in $((SECONDS - start)) s" ||
    bad "serve with a killed follower: exit $rc after $((SECONDS - start)) s"
  check "serve: mpirun names the killed rank" "rank 1" "$work/serve3.err"
else
  bad "serve did not start: $(tail -3 "$work/serve3.err")"
  kill "$ranks_pid" 2>/dev/null
fi

# A plan for 4 devices: fits -np 2 (2 each) and -np 4, the same bits as one process; refused
# under -np 3 before any weight is read, said once by rank 0.
printf 'Once upon a time\nThe market opened\n' >"$work/prompts.txt"
"$moe" profile --model "$src/models/ds-moe-tiny" --prompts "$work/prompts.txt" -o "$work/p.trace" >"$work/profile.out" 2>&1 || bad "profile: $(tail -3 "$work/profile.out")"
"$moe" plan --model "$src/models/ds-moe-tiny/config.json" --trace "$work/p.trace" --hardware l4-24gb-x4-pcie --devices 4 \
  -o "$work/p4.plan" >"$work/plan.out" 2>&1 || bad "plan: $(tail -3 "$work/plan.out")"
run_one plan1 --plan "$work/p4.plan" --gpu-mem 4MiB
run_ranks plan2 2 --plan "$work/p4.plan" --gpu-mem 4MiB
same_run "-np 2 with a 4-device plan = one process with it" "$work/plan1" "$work/plan2"
start=$SECONDS
timeout 60 "$mpirun" -np 3 "$moe" run -n 4 --plan "$work/p4.plan" >"$work/mismatch.out" 2>"$work/mismatch.err"
rc=$?
[[ $rc == 1 ]] && ok "a plan for 4 devices under -np 3 exits 1" || bad "mismatch exit $rc: $(cat "$work/mismatch.err")"
check "the mismatch names the ranks and devices" "the plan places experts on 4 devices, but 3 ranks x 1 devices each" "$work/mismatch.err"
[[ $(grep -c "^error:" "$work/mismatch.err") == 1 ]] && ok "the refusal is said once" || bad "refusal lines: $(cat "$work/mismatch.err")"

# The simulator's figure beside the measured one: the same layout under results-to-all, on a
# profile measured in the run (a positive figure, and the ranks' exchange it modelled); without
# mpirun or --gpu-mem there is nothing to predict, said in one line.
timeout 120 "$mpirun" -np 2 "$moe" bench decode --predict --prompt-tokens 8 -n 16 --json >"$work/predict.json" 2>"$work/predict.err" ||
  bad "bench decode --predict: $(tail -3 "$work/predict.err")"
if python3 - "$work/predict.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = d["rank_prediction"]
assert p["predicted_tokens_per_second"] > 0 and p["exchange"] == "results-to-all" and p["link_bytes_per_second"] > 0, p
assert d["decode_tokens_per_second"] > 0
PY
then ok "bench decode --predict under mpirun prints the simulator's figure"; else bad "predict: $(head -c 600 "$work/predict.json")"; fi
"$moe" bench decode --predict -n 2 >"$work/predict1.out" 2>"$work/predict1.err"
rc=$?
[[ $rc != 0 ]] && ok "--predict alone is refused (exit $rc)" || bad "--predict alone exit 0"
check "and says what it needs" "--predict needs --gpu-mem" "$work/predict1.err"

# A rank that cannot load: every rank exits, rank 0 names it and the cause.
timeout 60 "$mpirun" -np 1 "$moe" run -n 4 : -np 1 "$moe" run -n 4 --model "$work/no-such-model" >"$work/load.out" 2>"$work/load.err"
rc=$?
[[ $rc != 0 && $rc != 124 ]] && ok "a rank that cannot load fails the run" || bad "load failure exit $rc"
check "rank 0 names the rank that could not load" "error: rank 1 could not load:" "$work/load.err"
check "and its cause" "no-such-model" "$work/load.err"

# A rank that stops answering (it was asked for fewer tokens and left): the other gives up after
# --rank-timeout, naming itself and what it waited for, and the job ends.
start=$SECONDS
timeout 60 "$mpirun" -np 1 "$moe" run -n 30 --rank-timeout 2 : -np 1 "$moe" run -n 3 --rank-timeout 2 >"$work/gone.out" 2>"$work/gone.err"
rc=$?
elapsed=$((SECONDS - start))
[[ $rc != 0 && $rc != 124 && $elapsed -le 20 ]] && ok "a rank that stops answering ends the run in ${elapsed} s" ||
  bad "stopped rank: exit $rc after ${elapsed} s: $(cat "$work/gone.err")"
check "the waiting rank says why" "waited 2 s for the other ranks (--rank-timeout)" "$work/gone.err"

# kill -9 of rank 1 mid-run: mpirun ends the job; rank 0 says so itself and mpirun names the rank.
timeout 120 "$mpirun" -np 2 "$moe" bench decode --prompt-tokens 8 -n 1000 >"$work/kill.out" 2>"$work/kill.err" &
launcher=$!
victim=""
for _ in $(seq 1 200); do  # rank 1 once it is generating (its environment says which rank it is)
  for pid in $(pgrep -f -- "bench decode --prompt-tokens 8 -n 1000" 2>/dev/null); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$pid; fi
  done
  [[ -n "$victim" ]] && break
  sleep 0.05
done
sleep 0.5
start=$SECONDS
if [[ -n "$victim" ]] && kill -9 "$victim" 2>/dev/null; then
  wait "$launcher"
  rc=$?
  elapsed=$((SECONDS - start))
  [[ $rc != 0 && $rc != 124 && $elapsed -le 15 ]] && ok "a killed rank ends the run in ${elapsed} s (exit $rc)" ||
    bad "killed rank: exit $rc after ${elapsed} s: $(cat "$work/kill.err")"
  if grep -qF "error: rank 0: the run was ended by mpirun" "$work/kill.err" || grep -qE "rank 1 .*(signal 9|Killed)" "$work/kill.err"; then
    ok "the end is explained: $(grep -E "^error|signal 9" "$work/kill.err" | head -2 | tr '\n' ' ')"
  else
    bad "killed rank: no clear message in: $(cat "$work/kill.err")"
  fi
else
  wait "$launcher"
  bad "killed rank: rank 1 was not found or had already finished: $(tail -3 "$work/kill.err")"
fi

((failures == 0)) && echo "all passed" || echo "$failures failed"
exit $((failures > 0))
