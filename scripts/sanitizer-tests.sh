#!/usr/bin/env bash
# Runs the tests under sanitizers, as CI does (.ci/run). Usage: scripts/sanitizer-tests.sh [asan|tsan|all]
#   asan: every test of a libtorch-free build (build-asan/) under AddressSanitizer with leak checks
#         and UndefinedBehaviorSanitizer; any finding fails. The SIMD kernels against their
#         references (wide loads inside their rows), the file and request fuzzers, the HTTP
#         robustness tests and the CLI (whose tests run the sanitized `rme`) included.
#   tsan: the threaded code under ThreadSanitizer (build-tsan/): the serving loop, its I/O thread
#         and HTTP threads (server_tests), the scheduler and the expert store, the thread pool, the
#         load generator's client pool.
# Built at -O1 with line tables only, to stay inside CI's time; rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
jobs=$(nproc)
configure() {  # dir, extra cmake flags...
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DRME_WITH_TORCH=OFF -DRME_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" "$@" >/dev/null
}
if [[ $what == asan || $what == all ]]; then
  configure build-asan -DRME_ASAN=ON -DRME_UBSAN=ON
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
  echo "sanitizer-tests: asan+ubsan: no memory errors, no undefined behaviour, no leaks"
fi
if [[ $what == tsan || $what == all ]]; then
  configure build-tsan -DRME_TSAN=ON
  cmake --build build-tsan -j"$jobs" --target core_tests scheduler_tests engine_tests server_tests \
    loadgen_tests
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp"
  for t in core_tests scheduler_tests engine_tests server_tests loadgen_tests; do
    echo "tsan: $t"
    build-tsan/bin/$t --gtest_brief=1
  done
  echo "sanitizer-tests: tsan: no data races"
fi
