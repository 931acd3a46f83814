// tests/train: rme-train warns when OPENBLAS_CORETYPE pins OpenBLAS below what the CPU runs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/file.h"
#include "kernels/cpu.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

// A pinned OpenBLAS core narrower than the CPU (an image's OPENBLAS_CORETYPE=Haswell on an
// AVX-512 CPU) makes every product of training slower: rme-train says so, and says nothing when
// OpenBLAS chooses or the pin is as wide as the CPU.
TEST(OpenBlasCoreTest, WarnsWhenPinnedBelowTheCpu) {
  const std::string dir = test::temp_dir("openblas_pin");
  auto stderr_of = [&](const std::string& env) {
    const std::string log = dir + "/help.log";
    const std::string cmd =
        env + " " + std::string(RME_TRAIN_BIN) + " finetune --help >/dev/null 2>" + log;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return read_file(log).value();
  };
  const std::string pinned = stderr_of("env OPENBLAS_CORETYPE=Haswell");
  EXPECT_EQ(stderr_of("env -u OPENBLAS_CORETYPE"), "");
  EXPECT_EQ(stderr_of("env OPENBLAS_CORETYPE=SkylakeX"), "");
  if (!cpu_features().avx512) {
    EXPECT_EQ(pinned, "") << "no AVX-512 here: Haswell's kernels are as wide as the CPU";
    return;
  }
  EXPECT_NE(pinned.find("OPENBLAS_CORETYPE=Haswell"), std::string::npos) << pinned;
}

}  // namespace
}  // namespace rme
