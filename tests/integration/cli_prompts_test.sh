#!/usr/bin/env bash
# `moe run --prompts`: every prompt of a file generated concurrently gives the text that prompt
# gets alone with `moe run` (greedy and seeded sampling, per-line options, any batch and KV
# budget, preemption included), and bad prompt files get one line and exit code 1.
# Usage: cli_prompts_test.sh PATH/TO/moe SOURCE_DIR
set -uo pipefail
moe="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

cat >"$work/prompts.txt" <<'PROMPTS'
Once upon a time
{"prompt": "The little dog", "max_tokens": 7, "temperature": 0.8, "seed": 4}

{"prompt": "In the beginning", "temperature": 1.0, "top_p": 0.9, "seed": 11}
The theorem states that
{"prompt": "def main():", "max_tokens": 3}
PROMPTS

# What each prompt gives alone.
alone() {  # alone PROMPT MAX TEMPERATURE TOP_P SEED
  "$moe" run --json -p "$1" -n "$2" -t "$3" --top-p "$4" --seed "$5" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["text"]))'
}
{
  alone "Once upon a time" 12 0 1 0
  alone "The little dog" 7 0.8 1 4
  alone "In the beginning" 12 1.0 0.9 11
  alone "The theorem states that" 12 0 1 0
  alone "def main():" 3 0 1 0
} >"$work/alone" || fail "moe run alone"

for setup in "--max-batch 16" "--max-batch 2 --max-step-tokens 3" "--max-batch 5 --kv-mem 24KiB --kv-block 4"; do
  # shellcheck disable=SC2086
  if ! "$moe" run --json --prompts "$work/prompts.txt" -n 12 $setup >"$work/batched.json" 2>"$work/err"; then
    fail "--prompts $setup: $(head -c 300 "$work/err")"
    continue
  fi
  python3 - "$work/batched.json" >"$work/batched" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for r in sorted(doc["results"], key=lambda r: r["line"]):
    print(json.dumps(r["text"]))
PY
  if diff -q "$work/alone" "$work/batched" >/dev/null; then
    echo "ok: --prompts $setup: the texts alone ($(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["preemptions"], "preemptions,", d["steps"], "steps")' "$work/batched.json"))"
  else
    fail "--prompts $setup differs from alone:"; diff "$work/alone" "$work/batched"
  fi
done
"$moe" run --prompts "$work/prompts.txt" -n 4 >"$work/text" 2>"$work/err" && grep -q '^--- line 6 ' "$work/text" &&
  grep -q 'sequences, ' "$work/err" && echo "ok: text output" || fail "text output: $(head -c 300 "$work/err")"

expect_error() {  # expect_error DESCRIPTION FILE_CONTENT [flags...]
  local what="$1"
  printf '%s\n' "$2" >"$work/bad.txt"
  shift 2
  "$moe" run --prompts "$work/bad.txt" "$@" >"$work/out" 2>"$work/err"
  local code=$? lines
  lines=$(grep -vc '^note: ' "$work/err")
  if [[ $code -ne 1 || $lines -ne 1 ]]; then
    fail "$what: exit $code, $lines lines: $(head -c 300 "$work/err")"
  else
    echo "ok: $what: $(grep -v '^note: ' "$work/err")"
  fi
}
expect_error "broken JSON" '{"prompt": "a", '
expect_error "unknown key" '{"prompt": "a", "max_tokenz": 3}'
expect_error "no prompt" '{"max_tokens": 3}'
expect_error "negative max_tokens" '{"prompt": "a", "max_tokens": -1}'
expect_error "top_p above 1" '{"prompt": "a", "top_p": 3}'
expect_error "only blank lines" '   '
expect_error "longer than the KV budget" 'Once upon a time there was a' --kv-mem 16KiB --kv-block 16 -n 20
expect_error "a trace with many prompts" 'a' --trace-out "$work/t.trace"

echo "$failures failures"
[[ $failures -eq 0 ]]
