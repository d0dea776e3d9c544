#!/usr/bin/env bash
# Decodes a model inside a memory cgroup at limits of 100%, 75%, 50% and 30% of its size (the
# cgroup counts the page cache its weights occupy, as a container's limit does) and prints, per
# limit: the automatic placement (no budget flags; from the folder and from its expert store),
# the plain in-place run (--mem-limit none: mapped weights, the kernel pages them), the best of
# a small grid of hand budgets (--gpu-mem on the store) and llama.cpp's mmap run; each with the
# bytes it read from disk per generated token, beside the disk's O_DIRECT bandwidth measured in
# the same run, and the ceiling those reads imply (bandwidth / bytes per token).
#
# usage: scripts/bench_memlimit.sh [--model DIR] [--fractions 100,75,50,30] [--prompt P] [--gen N]
#                                  [--threads T] [--reps R] [--auto-prefetch SPEC] [--no-llama] [--json]
#   --model DIR    Hugging Face Mixtral-family folder (default: the random-weight checkpoint of
#                  configs/models/mixtral-1b-shape.json that scripts/bench_llamacpp.sh makes)
#   --fractions    limits, in percent of the model's weight files (default 100,75,50,30)
#   --prompt P     words of prompt (default 16)     --gen N   tokens to generate (default 32)
#   --threads T    CPU threads (default: nproc)     --reps R  repetitions, interleaved; medians (default 1)
#   --auto-prefetch SPEC  also the automatic placement with --prefetch SPEC (e.g. next-layer: in
#                  place, the guessed experts of later layers are read ahead), printed beside auto
#   --no-llama     skip llama.cpp (then --model is needed unless the default checkpoint exists)
#   --json         print one JSON document instead of the table
# Needs root (a cgroup of its own, v2 or v1 memory, made and removed by the script; the page
# cache is dropped before every run so each starts cold). MOE_BIN: our binary (default
# build/tools/moe). Bytes read per token: ours, what the decode steps read from disk (mapped page
# faults and O_DIRECT reads alike: `moe run --json`'s decode_disk_read_bytes over the decoded
# tokens); llama.cpp's, its block inputs over the generated tokens (getrusage via /usr/bin/time,
# loading included, so an upper bound).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "bench_memlimit: error: $*" >&2; exit 1; }
say() { echo "bench_memlimit: $*" >&2; }

model="" fractions="100,75,50,30" prompt=16 gen=32 threads="$(nproc)" reps=1 llama=1 json=0 auto_prefetch=""
while (($#)); do
  case "$1" in
    --model) model="${2:-}"; shift 2 || die "--model needs a value" ;;
    --fractions) fractions="${2:-}"; shift 2 || die "--fractions needs a value" ;;
    --prompt) prompt="${2:-}"; shift 2 || die "--prompt needs a value" ;;
    --gen) gen="${2:-}"; shift 2 || die "--gen needs a value" ;;
    --threads) threads="${2:-}"; shift 2 || die "--threads needs a value" ;;
    --reps) reps="${2:-}"; shift 2 || die "--reps needs a value" ;;
    --auto-prefetch) auto_prefetch="${2:-}"; shift 2 || die "--auto-prefetch needs a value" ;;
    --no-llama) llama=0; shift ;;
    --json) json=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
for v in prompt gen threads reps; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "--$v must be a positive integer, got '${!v}'"
done
[[ "$fractions" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--fractions takes percentages like 100,75,50,30, not '$fractions'"
((EUID == 0)) || die "needs root: it makes a memory cgroup and drops the page cache"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (Debian package 'time')"
moe="${MOE_BIN:-$root/build/tools/moe}"
[[ -x "$moe" ]] || die "no moe binary at $moe (build it with scripts/build.sh, or set MOE_BIN)"

# --- the model, its store and llama.cpp's GGUF -------------------------------------------------
llama_bench="" gguf=""
if ((llama)); then
  setup_args=(--setup-only); [[ -n "$model" ]] && setup_args+=(--model "$model")
  line="$("$root/scripts/bench_llamacpp.sh" "${setup_args[@]}" | tail -1)" || die "llama.cpp setup failed (see above)"
  llama_bench="${line#llama_bench=}"; llama_bench="${llama_bench%% gguf=*}"; gguf="${line##* gguf=}"
  [[ -x "$llama_bench" && -s "$gguf/model-bf16.gguf" ]] || die "llama.cpp setup printed '$line'"
fi
[[ -n "$model" ]] || model="$HOME/.cache/moe-bench/mixtral-1b-shape"
[[ -f "$model/config.json" ]] || die "$model holds no config.json (give --model, or run without --no-llama to make one)"
model="$(cd "$model" && pwd)"
store="$HOME/.cache/moe-bench/stores/$(basename "$model")-$(echo -n "$model" | sha1sum | cut -c1-8).moe"
newest="$(ls -t "$model"/*.safetensors | head -1)"
if [[ ! -s "$store" || "$newest" -nt "$store" ]]; then
  mkdir -p "$(dirname "$store")"
  say "packing $model into $store"
  "$moe" pack --model "$model" -o "$store.tmp" >/dev/null || die "moe pack failed"
  mv "$store.tmp" "$store"
fi
size=$(stat -c %s "$model"/*.safetensors | awk '{s += $1} END {print s}')

# --- the disk: sequential O_DIRECT reads of the weights ----------------------------------------
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
drop_caches
disk_bps="$(dd if="$newest" of=/dev/null bs=4M iflag=direct 2>&1 | awk '/bytes/ {
  for (i = 1; i <= NF; i++) if ($i == "s,") { print $1 / $(i - 1); exit } }')"
[[ -n "$disk_bps" ]] || die "could not measure the disk with dd iflag=direct"
say "weights $((size >> 20)) MiB; disk O_DIRECT $(awk -v b="$disk_bps" 'BEGIN {printf "%.0f", b / 1e6}') MB/s"

# --- a memory cgroup of our own: v2 where the memory controller is delegated, else v1 ----------
cg=""
if [[ -f /sys/fs/cgroup/cgroup.controllers ]] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
  grep -qw memory /sys/fs/cgroup/cgroup.subtree_control || echo +memory >/sys/fs/cgroup/cgroup.subtree_control
  cg="/sys/fs/cgroup/moe-memlimit-$$"; limit_file=memory.max; kind=v2
elif [[ -d /sys/fs/cgroup/memory ]]; then
  cg="/sys/fs/cgroup/memory/moe-memlimit-$$"; limit_file=memory.limit_in_bytes; kind=v1
else
  die "no memory cgroup hierarchy (v2 with the memory controller, or v1 at /sys/fs/cgroup/memory)"
fi
mkdir "$cg" || die "cannot make $cg"
work="$(mktemp -d)"
cleanup() {
  # A group can only go once it is empty: its processes have ended by now.
  rmdir "$cg" 2>/dev/null || say "could not remove $cg"
  rm -rf "$work"
}
trap cleanup EXIT
[[ $kind == v2 ]] && echo 0 >"$cg/memory.swap.max" 2>/dev/null || true
say "cgroup $kind at $cg"

# run NAME LIMIT CMD...: CMD inside the group under LIMIT bytes, cold; its stdout in NAME.out, its
# wall time, peak RSS (KiB) and block inputs (512-byte units) in NAME.time.
oom_kills() {  # the group's OOM kills so far (v1 memory.oom_control, v2 memory.events)
  local f
  for f in "$cg/memory.oom_control" "$cg/memory.events"; do
    [[ -f "$f" ]] && awk '$1 == "oom_kill" {print $2}' "$f" && return
  done
  echo 0
}
run() {
  local name="$1" limit="$2"; shift 2
  echo "$limit" >"$cg/$limit_file"
  drop_caches
  local kills_before; kills_before="$(oom_kills)"
  MOE_THREADS="$threads" bash -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$cg" \
    /usr/bin/time -f "%e %M %I" -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || {
    local rc=$? last oom=""
    last="$(grep -v -e '^[[:space:]]*$' -e '^Command exited' -e '^Command terminated' "$work/$name.err" | tail -1 || true)"
    [[ "$(oom_kills)" != "$kills_before" ]] && oom=" (killed by the cgroup's OOM killer)"
    echo "failed: exit $rc$oom${last:+: $last}" >"$work/$name.fail"
  }
}

words="$(python3 -c "import sys; print(' '.join(['the'] + ['story'] * (int(sys.argv[1]) - 1)))" "$prompt")"
moe_run=("$moe" run -p "$words" -n "$gen" --json)
IFS=, read -ra percents <<<"$fractions"
for ((r = 1; r <= reps; r++)); do
  for pct in "${percents[@]}"; do
    limit=$((size * pct / 100))
    say "rep $r/$reps: limit $pct% ($((limit >> 20)) MiB)"
    run "plain-$pct-$r" "$limit" "${moe_run[@]}" --model "$model" --mem-limit none
    run "auto-$pct-$r" "$limit" "${moe_run[@]}" --model "$model"
    run "auto_store-$pct-$r" "$limit" "${moe_run[@]}" --model "$store"
    [[ -n "$auto_prefetch" ]] && run "auto_prefetch-$pct-$r" "$limit" "${moe_run[@]}" --model "$model" --prefetch "$auto_prefetch"
    for share in 25 50 75; do
      run "hand${share}-$pct-$r" "$limit" "${moe_run[@]}" --model "$store" --gpu-mem $((limit * share / 100))
    done
    if ((llama)); then
      run "llama-$pct-$r" "$limit" "$llama_bench" -m "$gguf/model-bf16.gguf" -p 0 -n "$gen" -t "$threads" -r 1 -o json
    fi
  done
done

python3 - "$work" "$fractions" "$reps" "$gen" "$size" "$disk_bps" "$json" "$model" "$kind" "$auto_prefetch" <<'PY'
import glob, json, os, statistics, sys
work, fractions, reps, gen, size, disk, as_json, model, kind, auto_prefetch = sys.argv[1:]
reps, gen, size, disk = int(reps), int(gen), int(size), float(disk)
runs = ["auto", "auto_prefetch", "auto_store", "plain", "hand25", "hand50", "hand75", "llama"]

def one(name):
    base = os.path.join(work, name)
    if os.path.exists(base + ".fail"):
        return {"error": open(base + ".fail").read().strip()}
    if not os.path.exists(base + ".out"):
        return None
    text = open(base + ".out").read()
    try:
        doc = json.loads(text)
    except ValueError:
        return {"error": "no JSON output"}
    wall, peak_kib, blocks = open(base + ".time").read().split()[-3:]
    if isinstance(doc, list):  # llama-bench: one record per test
        rate = next((t["avg_ts"] for t in doc if t.get("n_gen", 0) > 0), None)
        read, per = int(blocks) * 512, int(blocks) * 512 / gen
    else:
        rate = doc.get("decode_tokens_per_second")
        read = doc.get("decode_disk_read_bytes", 0)
        per = read / max(len(doc.get("tokens", [])) - 1, 1)
    return {"tokens_per_second": rate, "bytes_read": read, "bytes_read_per_token": per,
            "peak_rss_bytes": int(peak_kib) * 1024, "seconds": float(wall),
            "setup": doc.get("offload", {}).get("setup", "in place") if isinstance(doc, dict) else "llama.cpp mmap"}

rows = []
for pct in fractions.split(","):
    row = {"percent": int(pct), "limit_bytes": size * int(pct) // 100}
    for r in runs:
        samples = [s for s in (one(f"{r}-{pct}-{i}") for i in range(1, reps + 1)) if s]
        good = [s for s in samples if "error" not in s and s["tokens_per_second"]]
        if not samples:
            continue
        if not good:
            row[r] = samples[0]
            continue
        med = statistics.median(s["tokens_per_second"] for s in good)
        pick = min(good, key=lambda s: abs(s["tokens_per_second"] - med))
        row[r] = dict(pick, tokens_per_second=med)
    hands = [r for r in ("hand25", "hand50", "hand75") if "tokens_per_second" in row.get(r, {})]
    if hands:
        row["best_hand"] = max(hands, key=lambda r: row[r]["tokens_per_second"])
    for a in (row.get("auto", {}), row.get("auto_prefetch", {})):
        if "tokens_per_second" in a:
            per = a["bytes_read_per_token"]
            a["disk_bound_tokens_per_second"] = disk / per if per > 0 else None
    rows.append(row)

if as_json == "1":
    print(json.dumps({"benchmark": "memlimit", "model": model, "weights_bytes": size, "disk_bytes_per_second": disk,
                      "cgroup": kind, "generated_tokens": gen, "rows": rows}, indent=2))
    sys.exit(0)

def rate(row, r):
    s = row.get(r)
    if not s: return "-"
    if "error" in s: return "fail"
    return f"{s['tokens_per_second']:.1f}"
def mb(row, r):
    s = row.get(r)
    return f"{s['bytes_read_per_token'] / 1e6:.0f}" if s and "bytes_read_per_token" in s else "-"
def ratio(row, a, b):
    x, y = row.get(a, {}), row.get(b, {})
    if "tokens_per_second" in x and "tokens_per_second" in y and y["tokens_per_second"]:
        return f"{x['tokens_per_second'] / y['tokens_per_second']:.2f}"
    return "-"

print(f"model    {model}: {size / 2**20:.0f} MiB of weights, {gen} tokens generated; cgroup {kind}; "
      f"disk O_DIRECT {disk / 1e6:.0f} MB/s")
print("tok/s (MB read per generated token); auto = no budget flags; hand = best of --gpu-mem 25/50/75% of the limit")
print(f"{'limit':>12} {'auto':>12} {'auto store':>12} {'plain mmap':>12} {'best hand':>18} {'llama.cpp':>12}"
      f" {'auto/plain':>10} {'auto/hand':>9} {'auto/llama':>10} {'auto/disk bound':>15}")
for row in rows:
    best = row.get("best_hand")
    cell = lambda r: f"{rate(row, r)} ({mb(row, r)})"
    hand = f"{rate(row, best)} ({mb(row, best)}) {best[4:]}%" if best else "-"
    a = row.get("auto", {})
    bound = a.get("disk_bound_tokens_per_second")
    vs_disk = f"{a['tokens_per_second'] / bound:.2f} of {bound:.1f}" if bound else "-"
    print(f"{row['percent']:>4}% {row['limit_bytes'] / 2**20:>5.0f}MiB {cell('auto'):>12} {cell('auto_store'):>12}"
          f" {cell('plain'):>12} {hand:>18} {cell('llama'):>12} {ratio(row, 'auto', 'plain'):>10}"
          f" {ratio(row, 'auto', best) if best else '-':>9} {ratio(row, 'auto', 'llama'):>10} {vs_disk:>15}")
    ap = row.get("auto_prefetch", {})
    if "tokens_per_second" in ap:
        bound = ap.get("disk_bound_tokens_per_second")
        print(f"      auto --prefetch {auto_prefetch}: {ap['tokens_per_second']:.1f} tok/s ({mb(row, 'auto_prefetch')} MB a token),"
              f" {ratio(row, 'auto_prefetch', 'auto')} x auto" + (f", {ap['tokens_per_second'] / bound:.2f} of its disk bound {bound:.1f}" if bound else ""))
    for r in runs:
        if "error" in row.get(r, {}):
            print(f"      {r}: {row[r]['error']}")
PY
