#!/usr/bin/env bash
# Installs the Debian packages rme needs (if missing), then configures and builds everything
# (CLI, tests, benchmarks) into build/. Safe to re-run; only what changed is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DRME_BUILD_TESTS=ON -DRME_BUILD_BENCH=ON >/dev/null
cmake --build build --parallel "$(nproc)"
echo "build: build/bin/rme ready"
