#!/usr/bin/env bash
# Installs the Debian packages rme needs to build, test and run (or, given package names, only
# those), and, by default, the npm packages the tests drive the server with (tests/node, from its
# lockfile). Idempotent, non-interactive.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=("$@")
NPM=$([ ${#PKGS[@]} -eq 0 ] && echo 1 || echo 0)
[ ${#PKGS[@]} -gt 0 ] || PKGS=(
  build-essential cmake ninja-build pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libcpp-httplib-dev
  libsentencepiece-dev
  libtorch-dev libopenblas0-pthread libblas-dev
  gnuplot-nox curl clang-format time
)
# Node.js for the client tests: Debian's, unless the machine already has one (e.g. NodeSource's).
[ "$NPM" = 0 ] || command -v node >/dev/null || PKGS+=(nodejs npm)
npm_deps() {
  [ "$NPM" = 1 ] || return 0
  # A copy of the lockfile npm ci installed from says the packages are current.
  cmp -s tests/node/package-lock.json tests/node/node_modules/.rme-installed-lock 2>/dev/null &&
    return 0
  echo "install-deps: npm ci in tests/node"
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error &&
    cp package-lock.json node_modules/.rme-installed-lock)
}
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  npm_deps
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
npm_deps
