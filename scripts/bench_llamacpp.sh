#!/usr/bin/env bash
# Runs llama.cpp's llama-bench beside `moe bench decode` on the same random-weight Mixtral
# checkpoint and prints prefill and decode tokens/s side by side:
#   bf16 vs llama.cpp BF16, int8 vs Q8_0, int4 vs Q4_0 (ours: --weights int8|int4 --quantize all,
#   and, on AVX512-VNNI CPUs, rows int8a8/int4a8 with our lossy --activations int8 beside the same GGUF runs,
#   on AVX512-BF16 ones a row bf16a16 with --activations bf16 beside BF16;
#   every matrix but routers, embeddings and norms, groups of 32; our quantized rows only where
#   `moe bench decode` has --weights; n/a otherwise).
#
# usage: scripts/bench_llamacpp.sh [--threads T] [--prompt P] [--gen N] [--reps R]
#                                  [--model DIR] [--skip-build] [--json]
#   --threads T    CPU threads for both engines (default: nproc; MOE_THREADS=T for ours)
#   --prompt P     prompt tokens (default 64)      --gen N   decode tokens (default 64)
#   --reps R       repetitions, run interleaved (ours, then llama.cpp, per format); medians (default 3)
#   --model DIR    reuse a Hugging Face Mixtral checkpoint folder (default: one made by
#                  scripts/make_bench_checkpoint.py from configs/models/mixtral-1b-shape.json)
#   --skip-build   use the llama.cpp build and Python env already in $LLAMACPP_DIR; fetch/build nothing
#   --json         print one JSON document instead of the table
#   --setup-only   build llama.cpp and convert the checkpoint, print "llama_bench=PATH gguf=DIR", run nothing
#                  (how scripts/bench_memlimit.sh gets its llama.cpp run)
# Environment: LLAMACPP_DIR (cache of the llama.cpp source, build, Python env and GGUF files;
#   default ~/.cache/moe-bench/llamacpp), LLAMACPP_PY_VERSION (the llama-cpp-python sdist whose
#   vendored llama.cpp is used), MOE_BIN (our binary; default build/tools/moe, which this script
#   does not build: run scripts/build.sh first).
# llama.cpp comes from PyPI's llama-cpp-python source distribution (it vendors llama.cpp), so
# only a package registry is needed. Slow steps are cached and skipped on reruns.
# Both decodes are timed after the P-token prompt (llama-bench -d P, where the build has it).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "bench_llamacpp: error: $*" >&2; exit 1; }
say() { echo "bench_llamacpp: $*" >&2; }

threads="$(nproc)" prompt=64 gen=64 reps=3 model="" skip_build=0 json=0 setup_only=0
while (($#)); do
  case "$1" in
    --threads) threads="${2:-}"; shift 2 || die "--threads needs a value" ;;
    --prompt) prompt="${2:-}"; shift 2 || die "--prompt needs a value" ;;
    --gen) gen="${2:-}"; shift 2 || die "--gen needs a value" ;;
    --reps) reps="${2:-}"; shift 2 || die "--reps needs a value" ;;
    --model) model="${2:-}"; shift 2 || die "--model needs a value" ;;
    --skip-build) skip_build=1; shift ;;
    --json) json=1; shift ;;
    --setup-only) setup_only=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
for v in threads prompt gen reps; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "--$v must be a positive integer, got '${!v}'"
done
if [[ -n "$model" ]]; then
  [[ -d "$model" ]] || die "--model $model is not a folder"
  [[ -f "$model/config.json" ]] || die "--model $model holds no config.json"
  model="$(cd "$model" && pwd)"
fi

LLAMACPP_DIR="${LLAMACPP_DIR:-$HOME/.cache/moe-bench/llamacpp}"
version="${LLAMACPP_PY_VERSION:-0.3.36}"
src="$LLAMACPP_DIR/llama_cpp_python-$version/vendor/llama.cpp"
build="$LLAMACPP_DIR/build-$version"
venv="$LLAMACPP_DIR/venv"
logs="$LLAMACPP_DIR/logs"
bench_bin="$build/bin/llama-bench" quantize_bin="$build/bin/llama-quantize"
moe="${MOE_BIN:-${MOE_BUILD_DIR:-$root/build}/tools/moe}"
mkdir -p "$LLAMACPP_DIR" "$logs"

# Runs a step with its output in logs/NAME.log; on failure, one line naming the log.
step() {
  local name="$1"; shift
  local t0=$SECONDS
  "$@" >"$logs/$name.log" 2>&1 || die "$name failed (log: $logs/$name.log)"
  say "$name: $((SECONDS - t0)) s"
}

# --- llama.cpp: source from the sdist, CMake build of llama-bench and llama-quantize ----------
fetch_source() {
  local dl="$LLAMACPP_DIR/dl"
  mkdir -p "$dl"
  [[ -f "$dl/llama_cpp_python-$version.tar.gz" ]] ||
    python3 -m pip download --no-binary :all: --no-deps -d "$dl" "llama-cpp-python==$version"
  tar -xzf "$dl/llama_cpp_python-$version.tar.gz" -C "$LLAMACPP_DIR"
}
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF)
# -march=native turns on ggml's AMX kernels on CPUs that have AMX; in llama.cpp 0c1e570 they die
# of SIGILL/SIGSEGV in the AMX Q8_0/Q4_0 matmul (seen on a KVM Xeon with AMX; the open upstream
# PR ggml-org/llama.cpp#26954 reports such crashes from its tile setup). So AMX is off unless
# LLAMACPP_AMX=1; every other native extension stays on.
if [[ "${LLAMACPP_AMX:-0}" != 1 ]]; then
  no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  cmake_args+=("-DCMAKE_C_FLAGS=$no_amx" "-DCMAKE_CXX_FLAGS=$no_amx")
fi
build_stamp="$build/.bench-cmake-args"  # rebuild when the arguments change
build_llamacpp() {
  # nice: a build should not slow whatever else runs here (it costs nothing on an idle machine).
  nice -n 19 cmake -S "$src" -B "$build" "${cmake_args[@]}" &&
    nice -n 19 cmake --build "$build" --target llama-bench llama-quantize -j"$(nproc)" &&
    printf '%s\n' "${cmake_args[@]}" >"$build_stamp"
}
built() { [[ -x "$bench_bin" && -x "$quantize_bin" && "$(cat "$build_stamp" 2>/dev/null)" == "$(printf '%s\n' "${cmake_args[@]}")" ]]; }
# The converter's Python deps, at the versions the vendored requirements pin (without their
# extra index, which is not a package registry we use), plus the vendored gguf-py.
setup_venv() {
  local req="$src/requirements"
  [[ -x "$venv/bin/python" ]] || python3 -m venv --system-site-packages "$venv"
  mapfile -t pins < <(grep -hvE '^[[:space:]]*(#|-|$)|^gguf' \
    "$req/requirements-convert_hf_to_gguf.txt" "$req/requirements-convert_legacy_llama.txt")
  nice -n 19 "$venv/bin/pip" install "${pins[@]}" safetensors "$src/gguf-py" && touch "$venv/.ok-$version"
}
if ((skip_build)); then
  [[ -x "$bench_bin" && -x "$quantize_bin" ]] || die "no llama.cpp build in $build (run without --skip-build)"
else
  command -v cmake >/dev/null && command -v ninja >/dev/null || die "cmake and ninja are needed to build llama.cpp"
  [[ -f "$src/CMakeLists.txt" ]] || step fetch-llama-cpp-python fetch_source
  built || step build-llama.cpp build_llamacpp
  [[ -f "$venv/.ok-$version" ]] || step python-env setup_venv
fi
need_venv() { [[ -f "$venv/.ok-$version" ]] || die "no converter Python env in $venv (run without --skip-build)"; }

# --- the checkpoint and its GGUF files ---------------------------------------------------------
if [[ -z "$model" ]]; then
  model="$HOME/.cache/moe-bench/mixtral-1b-shape"
  if [[ ! -f "$model/config.json" || ! -f "$model/tokenizer.model" ]]; then
    need_venv
    rm -rf "$model.tmp"
    step make-checkpoint nice -n 19 "$venv/bin/python" "$root/scripts/make_bench_checkpoint.py" \
      --config "$root/configs/models/mixtral-1b-shape.json" -o "$model.tmp"
    rm -rf "$model" && mv "$model.tmp" "$model"
  fi
fi
# One GGUF folder per checkpoint path; a GGUF older than the checkpoint's weights is remade.
gguf="$LLAMACPP_DIR/gguf/$(basename "$model")-$(echo -n "$model" | sha1sum | cut -c1-8)"
mkdir -p "$gguf"
newest_weights="$(ls -t "$model"/*.safetensors 2>/dev/null | head -1)"
[[ -n "$newest_weights" ]] || die "$model holds no *.safetensors"
stale() { [[ ! -s "$1" || "$newest_weights" -nt "$1" ]]; }
for type in bf16 q8_0; do
  out="$gguf/model-$type.gguf"
  if stale "$out"; then
    need_venv
    step "convert-$type" nice -n 19 "$venv/bin/python" "$src/convert_hf_to_gguf.py" "$model" \
      --outtype "$type" --outfile "$out.tmp"
    mv "$out.tmp" "$out"
  fi
done
if stale "$gguf/model-q4_0.gguf"; then
  step quantize-q4_0 nice -n 19 "$quantize_bin" "$gguf/model-bf16.gguf" "$gguf/model-q4_0.gguf.tmp" Q4_0 "$(nproc)"
  mv "$gguf/model-q4_0.gguf.tmp" "$gguf/model-q4_0.gguf"
fi

if ((setup_only)); then
  echo "llama_bench=$bench_bin gguf=$gguf"
  exit 0
fi

# --- our engine ------------------------------------------------------------------------------
[[ -x "$moe" ]] || die "no moe binary at $moe (build it with scripts/build.sh, or set MOE_BIN)"
moe_help="$("$moe" bench decode --help 2>&1)" || die "'$moe bench decode --help' failed"
has_weights_flag=0
grep -q -- '--weights' <<<"$moe_help" && has_weights_flag=1

# --- interleaved runs: per repetition, per format, ours then llama.cpp -------------------------
runs="$LLAMACPP_DIR/last-run"  # every run's raw JSON and stderr, kept until the next run
rm -rf "$runs" && mkdir -p "$runs"
# CPU time the whole machine spent busy, and what this script's own children spent (clock ticks):
# the difference is other processes competing for the cores, which skews llama.cpp's spinning
# thread pool far more than it does ours. Reported, so a run on a busy machine is not trusted.
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
child_ticks() { sed 's/.*) //' "/proc/$$/stat" | awk '{print $14 + $15}'; }
t0_wall=$SECONDS t0_machine="$(machine_ticks)" t0_child="$(child_ticks)"
# "failed (exit N): last stderr line" or "killed by SIGxxx", for a one-line error.
why() {
  local rc="$1" last
  last="$(grep -v '^[[:space:]]*$' "$2" | tail -1)"
  if ((rc > 128)); then echo "killed by SIG$(kill -l $((rc - 128))) (stderr: $2)"; else echo "failed (exit $rc): $last"; fi
}
formats=("bf16 bf16" "int8 q8_0" "int4 q4_0")  # "our weights" "llama.cpp type"
# Our lossy int8-activation mode (llama.cpp's kind of dot product) beside the same GGUF runs,
# where the binary has it and the CPU has AVX512-VNNI.
if grep -q -- '--activations' <<<"$moe_help" && grep -qw avx512_vnni /proc/cpuinfo; then
  formats+=("int8a8 q8_0" "int4a8 q4_0")
fi
# And the lossy bf16-activation mode (llama.cpp's BF16 path multiplies so) on AVX512-BF16 CPUs.
if grep -q -- 'bf16 (lossy' <<<"$moe_help" && grep -qw avx512_bf16 /proc/cpuinfo; then
  formats+=("bf16a16 bf16")
fi
depth=(-d "$prompt")
if ! "$bench_bin" --help 2>&1 | grep -q -- '--n-depth'; then
  say "this llama-bench has no -d: its decode is timed from an empty context, ours after the prompt"
  depth=()
fi
for ((r = 1; r <= reps; r++)); do
  for pair in "${formats[@]}"; do
    read -r ours theirs <<<"$pair"
    say "rep $r/$reps: $ours vs ${theirs^^}"
    if [[ "$ours" == bf16* || "$has_weights_flag" == 1 ]]; then
      # Every matrix in the format, as the GGUF types quantise every matrix (norms and router aside).
      case "$ours" in
        bf16) extra=() ;;
        bf16a16) extra=(--activations bf16) ;;
        *a8) extra=(--weights "${ours%a8}" --quantize all --activations int8) ;;
        *) extra=(--weights "$ours" --quantize all) ;;
      esac
      MOE_THREADS="$threads" "$moe" bench decode --model "$model" --prompt-tokens "$prompt" -n "$gen" \
        "${extra[@]}" --json >"$runs/moe-$ours-$r.json" 2>"$runs/moe-$ours-$r.err" ||
        die "moe bench decode ($ours) $(why $? "$runs/moe-$ours-$r.err")"
    fi
    [[ "$ours" == *a8 || "$ours" == *a16 ]] && continue  # compared with the llama.cpp runs of the exact row
    # Prefill from an empty context; decode after the prompt's P tokens (-d), as ours decodes.
    "$bench_bin" -m "$gguf/model-$theirs.gguf" -p "$prompt" -n 0 -t "$threads" -r 1 -o json \
      >"$runs/llama-$theirs-$r.json" 2>"$runs/llama-$theirs-$r.err" ||
      die "llama-bench ($theirs) $(why $? "$runs/llama-$theirs-$r.err")"
    "$bench_bin" -m "$gguf/model-$theirs.gguf" -p 0 -n "$gen" "${depth[@]}" -t "$threads" -r 1 -o json \
      >"$runs/llama-$theirs-$r-tg.json" 2>"$runs/llama-$theirs-$r.err" ||
      die "llama-bench ($theirs) $(why $? "$runs/llama-$theirs-$r.err")"
  done
done

# --- medians, table or JSON ------------------------------------------------------------------
other_share="$(awk -v m=$(($(machine_ticks) - t0_machine)) -v c=$(($(child_ticks) - t0_child)) \
  -v w=$((SECONDS - t0_wall)) -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" \
  'BEGIN { o = (m - c) / hz / (w > 0 ? w : 1) / n; printf "%.2f", o < 0 ? 0 : o }')"
cpu="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
python3 - "$runs" "$reps" "$json" "$cpu" "$threads" "$prompt" "$gen" "$model" "$version" "$other_share" <<'PY'
import json, statistics, sys
runs, reps, as_json, cpu, threads, prompt, gen, model, version, other_share = sys.argv[1:]
reps, other_share = int(reps), float(other_share)

def load(path):
    try:
        text = open(path).read()
    except FileNotFoundError:
        return None
    start = min(i for i in (text.find("{"), text.find("["), len(text)) if i >= 0)  # skip any log lines
    return json.JSONDecoder().raw_decode(text[start:])[0]

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

rows, build = [], {}
for ours, theirs in (("bf16", "bf16"), ("int8", "q8_0"), ("int4", "q4_0"), ("int8a8", "q8_0"), ("int4a8", "q4_0"),
                     ("bf16a16", "bf16")):
    if ours.endswith(("a8", "a16")) and load(f"{runs}/moe-{ours}-1.json") is None:
        continue  # the mode was not run
    moe_pp, moe_tg, ll_pp, ll_tg = [], [], [], []
    for r in range(1, reps + 1):
        m = load(f"{runs}/moe-{ours}-{r}.json")
        if m is not None:
            moe_pp.append(m.get("prefill_tokens_per_second"))
            moe_tg.append(m.get("decode_tokens_per_second"))
        for t in (load(f"{runs}/llama-{theirs}-{r}.json") or []) + (load(f"{runs}/llama-{theirs}-{r}-tg.json") or []):
            build = {"commit": t.get("build_commit"), "build_number": t.get("build_number")}
            (ll_pp if t.get("n_gen") == 0 else ll_tg).append(t.get("avg_ts"))
    row = {"moe_weights": ours, "llama_cpp_type": theirs.upper(),
           "samples": {"moe_prefill": moe_pp, "llama_cpp_prefill": ll_pp, "moe_decode": moe_tg, "llama_cpp_decode": ll_tg},
           "moe_prefill_tokens_per_second": median(moe_pp), "llama_cpp_prefill_tokens_per_second": median(ll_pp),
           "moe_decode_tokens_per_second": median(moe_tg), "llama_cpp_decode_tokens_per_second": median(ll_tg)}
    for k in ("prefill", "decode"):
        a, b = row[f"moe_{k}_tokens_per_second"], row[f"llama_cpp_{k}_tokens_per_second"]
        row[f"{k}_ratio"] = a / b if a and b else None
    rows.append(row)

doc = {"benchmark": "moe-vs-llama.cpp", "machine": cpu, "threads": int(threads), "prompt_tokens": int(prompt),
       "decode_tokens": int(gen), "reps": reps, "model": model, "other_processes_cpu_share": other_share,
       "llama_cpp": {**build, "llama_cpp_python": version}, "rows": rows}
if as_json == "1":
    print(json.dumps(doc, indent=2))
    sys.exit()
# Rows whose samples spread by more than 25% (max/min) get a '*'.
noisy = lambda xs: len([x for x in xs if x]) > 1 and max(x for x in xs if x) > 1.25 * min(x for x in xs if x)
f = lambda x, p=1: "n/a" if x is None else f"{x:.{p}f}"
print(f"machine  {cpu}, {threads} threads")
print(f"llama.cpp {build.get('commit')} (build {build.get('build_number')}, from llama-cpp-python {version})")
print(f"model    {model}: {prompt} prompt + {gen} decode tokens, median of {reps}; ratio = moe / llama.cpp")
print(f"{'weights':<14} {'moe pp t/s':>11} {'llama pp t/s':>13} {'ratio':>6} {'moe tg t/s':>11} {'llama tg t/s':>13} {'ratio':>6}")
for r in rows:
    print(f"{r['moe_weights'] + ' vs ' + r['llama_cpp_type']:<14} {f(r['moe_prefill_tokens_per_second']):>11} "
          f"{f(r['llama_cpp_prefill_tokens_per_second']):>13} {f(r['prefill_ratio'], 2):>6} "
          f"{f(r['moe_decode_tokens_per_second']):>11} {f(r['llama_cpp_decode_tokens_per_second']):>13} {f(r['decode_ratio'], 2):>6}"
          f"{' *' if any(noisy(v) for v in r['samples'].values()) else ''}")
if any(any(noisy(v) for v in r["samples"].values()) for r in rows):
    print("* samples of this row spread by more than 25% (all samples: --json)")
if other_share > 0.05:
    print(f"warning: other processes used {100 * other_share:.0f}% of the CPUs during the runs: "
          "the numbers (llama.cpp's above all) are not to be trusted")
PY
