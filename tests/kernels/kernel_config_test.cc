// tests: KernelConfig — the CPU's best configuration, and the environment read once by the CLI.
#include "kernels/kernel_config.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace rme {
namespace {

// Sets an environment variable for one scope (tests run single-threaded).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    setenv(name, value, 1);
  }
  ~ScopedEnv() { had_ ? setenv(name_, old_.c_str(), 1) : unsetenv(name_); }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

TEST(KernelConfigTest, BestIsTheWidestIsaWithInt8AndNoInvariance) {
  const KernelConfig& k = KernelConfig::best();
  EXPECT_EQ(k.isa, supported_isas().back());
  EXPECT_TRUE(k.int8);
  EXPECT_FALSE(k.batch_invariant);
  EXPECT_EQ(&k, &KernelConfig::best());  // probed once
  EXPECT_NE(k.describe().find(isa_name(k.isa)), std::string::npos);
}

TEST(KernelConfigTest, EnvironmentChoosesIsaInt8AndBlas) {
  {
    ScopedEnv isa("RME_ISA", "scalar"), int8("RME_INT8", "0"), blas("RME_BLAS", "0");
    auto k = KernelConfig::from_env();
    ASSERT_TRUE(k.ok()) << k.status().message();
    EXPECT_EQ(k->isa, Isa::kScalar);
    EXPECT_FALSE(k->int8);
    EXPECT_FALSE(k->blas);
    EXPECT_EQ(k->describe(), "scalar");
  }
  {
    ScopedEnv isa("RME_ISA", "mmx");
    auto k = KernelConfig::from_env();
    ASSERT_FALSE(k.ok());
    EXPECT_NE(k.status().message().find("RME_ISA: ISA 'mmx'"), std::string::npos)
        << k.status().message();
    EXPECT_NE(k.status().message().find("scalar"), std::string::npos);  // says what it has
  }
  // The best config is unchanged by what the environment said.
  EXPECT_EQ(KernelConfig::best().isa, supported_isas().back());
  EXPECT_TRUE(KernelConfig::best().int8);
}

TEST(KernelConfigTest, WithIsaRefusesAnIsaTheCpuLacks) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) {
    auto k = KernelConfig::best().with_isa(std::string(isa_name(isa)));
    EXPECT_EQ(k.ok(), cpu_has(isa)) << isa_name(isa);
    if (k.ok()) {
      EXPECT_EQ(k->isa, isa);
    }
  }
  EXPECT_EQ(KernelConfig::best().with_isa("")->isa, KernelConfig::best().isa);
}

}  // namespace
}  // namespace rme
