#!/usr/bin/env bash
# AArch64 check: builds rme's libraries and portable tests with Debian's cross compiler
# (g++-aarch64-linux-gnu) and runs them under qemu-user — the kernel tests on the NEON and scalar
# kernels, the stories260K golden test, and the core/formats/engine/moefy/scheduler tests.
# Installs what it needs (arm64 libraries beside the native ones). No libtorch and no
# libsentencepiece for arm64 (Debian 12's -dev package cannot be installed for two architectures
# at once), hence -DRME_WITH_TORCH=OFF: the `rme` app and the tests that run it are left out.
# About 5 minutes on 2 cores. Usage: scripts/cross-arm64.sh [build dir, default build-arm64]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-arm64}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS=(cmake ninja-build pkg-config nlohmann-json3-dev libcli11-dev g++-aarch64-linux-gnu
  qemu-user-static libc6:arm64 libgtest-dev:arm64 libcpp-httplib-dev:arm64)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
fi
scripts/install-deps.sh "${PKGS[@]}"
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
  -DRME_WITH_TORCH=OFF -DRME_BUILD_BENCH=OFF
ninja -C "$B"
ctest --test-dir "$B" -j2 --output-on-failure
# qemu's default CPU ("max") has DotProd; the kernels again on a Cortex-A53 (Armv8.0: NEON without
# DotProd), so the f32-activation fallback is checked too.
QEMU_CPU=cortex-a53 qemu-aarch64-static "$B/bin/kernels_tests" --gtest_brief=1
echo "cross-arm64: all tests passed under qemu-user (AArch64)"
