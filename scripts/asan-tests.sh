#!/usr/bin/env bash
# Builds the kernel, serving, scheduler and fuzz tests with AddressSanitizer (leak checking on)
# and UndefinedBehaviorSanitizer (any finding fails) in build-asan/ and runs them: the SIMD
# kernels against their references (wide loads must stay inside their rows), the HTTP robustness
# tests (hostile, slow and vanishing clients, 64 streams, changed checkpoints), batch invariance,
# the expert cache and the file/request fuzzers must pass with no memory errors, no undefined
# behaviour and no leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -G Ninja -DRME_ASAN=ON -DRME_UBSAN=ON -DRME_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-asan -j"$(nproc)" --target kernels_tests server_tests scheduler_tests \
  fuzz_tests
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
build-asan/bin/kernels_tests
build-asan/bin/scheduler_tests
build-asan/bin/server_tests
build-asan/bin/fuzz_tests
echo "asan-tests: no errors, no undefined behaviour, no leaks"
