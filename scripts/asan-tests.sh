#!/usr/bin/env bash
# Builds the kernel, serving and scheduler tests with AddressSanitizer (leak checking on) in
# build-asan/ and runs them: the SIMD kernels against their references (wide loads must stay
# inside their rows), the HTTP robustness tests (hostile clients, 64 streams, disconnects), batch
# invariance and the expert cache must pass with no memory errors and no leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -G Ninja -DRME_ASAN=ON -DRME_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-asan -j"$(nproc)" --target kernels_tests server_tests scheduler_tests
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
build-asan/bin/kernels_tests
build-asan/bin/scheduler_tests
build-asan/bin/server_tests
echo "asan-tests: no errors, no leaks"
