#!/usr/bin/env bash
# Installs the Debian packages rme needs to build, test and run (or, given package names, those).
# Idempotent, non-interactive.
set -euo pipefail
PKGS=("$@")
[ ${#PKGS[@]} -gt 0 ] || PKGS=(
  build-essential cmake ninja-build pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libcpp-httplib-dev
  libsentencepiece-dev
  libtorch-dev libopenblas0-pthread libblas-dev
  gnuplot-nox curl clang-format time
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
