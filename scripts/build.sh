#!/usr/bin/env bash
# Configures and builds into build/ (Release: the kernels pick AVX-512, AVX2 or portable code at
# run time, so one binary is fast on any x86-64). CUDA code is built whenever
# nvcc is found, even without a GPU. Extra arguments go to cmake's configure step.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install_deps.sh"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ -x /usr/local/cuda/bin/nvcc && -z "${CUDACXX:-}" ]]; then export CUDACXX=/usr/local/cuda/bin/nvcc; fi
build="${MOE_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
