#!/usr/bin/env bash
# Builds the engine and its tests and runs the whole suite. GPU tests skip, saying why, on a
# machine without a GPU. Arguments are passed to ctest (e.g. scripts/test.sh -L unit).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
"$root/scripts/install_deps.sh"
# The server tests' real client, in a venv of the build (PyPI: tests/serve/requirements.txt).
venv="$build/test-venv"
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$root/tests/serve/requirements.txt" "$venv/requirements.txt"; then
  mkdir -p "$build"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/serve/requirements.txt"
  cp "$root/tests/serve/requirements.txt" "$venv/requirements.txt"
fi
"$root/scripts/build.sh" -DMOE_BUILD_TESTS=ON -DMOE_TEST_PYTHON="$venv/bin/python"
cd "$build"
ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@"
