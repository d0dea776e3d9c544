#!/usr/bin/env bash
# Installs the Debian 12 packages the build and the tests need. Idempotent; quiet when all is there.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates python3 python3-venv python3-pip
  libgtest-dev libgmock-dev libbenchmark-dev
  liburing-dev libboost-dev protobuf-compiler libprotobuf-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libxxhash-dev libzstd-dev
  libyaml-cpp-dev libsentencepiece-dev libpcre2-dev
  libopenmpi-dev openmpi-bin
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
