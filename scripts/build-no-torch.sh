#!/usr/bin/env bash
# Proves inference needs no libtorch: installs only the non-libtorch packages, configures with
# RME_WITH_TORCH=OFF and libtorch hidden from CMake (find_package(Torch) disabled, Torch_DIR bogus),
# builds `rme` and the tests, checks no binary links libtorch, runs the tests (every inference
# test; the libtorch oracle and training tests are not built), generates from the embedded model
# and checks that `rme train` fails in one line naming what to install. About 10 minutes on 2
# cores. Usage: scripts/build-no-torch.sh [build dir, default build-notorch]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-notorch}
scripts/install-deps.sh build-essential cmake ninja-build pkg-config libgtest-dev libgmock-dev \
  nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libsentencepiece-dev libopenblas0-pthread \
  libblas-dev
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRME_WITH_TORCH=OFF -DRME_BUILD_BENCH=OFF \
  -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON -DTorch_DIR=/nonexistent >/dev/null
ninja -C "$B"
for f in "$B"/bin/*; do
  if ldd "$f" | grep -Eq 'libtorch|libc10'; then
    echo "build-no-torch: $f links libtorch" >&2
    exit 1
  fi
done
[ ! -e "$B/bin/rme-train" ] || { echo "build-no-torch: rme-train was built" >&2; exit 1; }
ctest --test-dir "$B" -j2 --output-on-failure
"$B/bin/rme" generate data/models/stories260K.bin --tokenizer data/models/tok512.bin \
  --prompt "Once upon a time" --temp 0 --tokens 20
if "$B/bin/rme" train --help 2>"$B/train.err"; then
  echo "build-no-torch: rme train did not fail" >&2
  exit 1
fi
grep -q "libtorch-dev" "$B/train.err" || { echo "build-no-torch: unclear error: $(cat "$B/train.err")" >&2; exit 1; }
echo "build-no-torch: rme and the inference tests build and pass without libtorch ($(cat "$B/train.err"))"
