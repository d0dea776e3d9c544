#!/usr/bin/env bash
# Builds every libFuzzer target with clang (ASan + UBSan) into build-fuzz/ and runs each for a
# bounded time over a copy of its seed corpus; a crash leaves its input in build-fuzz/crashes/.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-60}"
shift || true
"$root/scripts/install_deps.sh"
command -v clang++ >/dev/null || { echo "fuzz.sh needs clang++ (apt-get install clang)" >&2; exit 1; }
build="$root/build-fuzz"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DMOE_FUZZ=ON -DMOE_CUDA=OFF -DMOE_BUILD_TESTS=ON >/dev/null
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cd "$root/tests/fuzz" && ls -d */ | tr -d / | sed 's/^/fuzz_/')
fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
mkdir -p "$build/crashes"
failed=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  cp -n "$root/tests/fuzz/${t#fuzz_}/corpus/"* "$corpus/" 2>/dev/null || true
  echo "== $t: ${seconds}s"
  if ! "$build/$(cd "$build" && find . -name "$t" -type f -perm -u+x | head -1)" "$corpus" -max_total_time="$seconds" \
      -artifact_prefix="$build/crashes/$t-" -print_final_stats=1 2>"$build/$t.log"; then
    echo "FAIL: $t (see $build/$t.log and $build/crashes/)"
    failed=$((failed + 1))
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss" "$build/$t.log" | tr '\n' ' '
    echo
  fi
done
echo "$failed target(s) failed"
exit $((failed > 0))
