#!/usr/bin/env bash
# Packs what the GPU check runs into .gpu-bundle/ (ignored by git): the stripped `moe` and GPU
# test binaries of an existing CUDA build, and the Debian libraries they load that a GPU machine
# without our packages lacks. The device machines here cannot install packages and take a while
# to build the project, so a session with a GPU carries the bundle instead:
#   tools/gpu_bundle.sh                       # here, after a build with CUDA (scripts/build.sh)
#   run(command="tools/gpu_check.sh --bundle .gpu-bundle.tar.xz [--mixtral]", carry=[".gpu-bundle.tar.xz"])
# The folder is also packed as .gpu-bundle.tar.xz: with the checkout's ~41 MiB the folder itself
# (~77 MiB) would pass the device tool's 64 MiB limit on what travels; xz's 64 MiB window finds
# the kernels the binaries share (~10 MiB packed, gzip ~27).
# CUDA's own libraries (cudart, cuBLAS, NCCL) are not packed: the device has them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
out="$root/.gpu-bundle"
binaries=("$build/tools/moe")
for t in gpu_kernels_test gpu_expert_device_test gpu_offload_test gpu_nccl_test; do binaries+=("$build/tests/gpu/$t"); done
for b in "${binaries[@]}"; do
  [[ -x "$b" ]] || { echo "gpu_bundle: $b is missing: build with CUDA and tests first (scripts/build.sh -DMOE_BUILD_TESTS=ON)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for b in "${binaries[@]}" "$build/tools/libmoe_sentencepiece_shim.so"; do
  cp "$b" "$out/bin/"
  strip --strip-unneeded "$out/bin/$(basename "$b")"
done
# Every library the binaries load from the system's Debian packages (not glibc, libstdc++ or
# CUDA's, which the device has in newer versions).
for b in "$out"/bin/*; do
  ldd "$b" | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|libgcc_s.so*|libstdc++.so*|ld-linux*|libcu*|libnccl*|libz.so*) ;;
    *) cp -L "$lib" "$out/lib/" ;;
  esac
done
# The routing the Mixtral decode replays, for machines without ../shared.
trace="$root/../shared/data/traces/mixtral-8x7b/humaneval_2_routing.jsonl"
[[ -f "$trace" ]] && cp "$trace" "$out/"
tar cf - -C "$root" "$(basename "$out")" | xz -9 -T2 >"$out.tar.xz"
echo "gpu_bundle: $(du -sh "$out" | cut -f1) in $out, $(du -sh "$out.tar.xz" | cut -f1) packed in $out.tar.xz ($(ls "$out/bin" | wc -l) binaries, $(ls "$out/lib" | wc -l) libraries)"
