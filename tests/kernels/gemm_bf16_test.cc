// tests/kernels: the opt-in bf16 products — against the scalar reference, bit-identical whatever
// the batch, and refused by configs that cannot run them.
#include "kernels/gemm_bf16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/interleave.h"
#include "kernels/matmul.h"
#include "tensor/half.h"

namespace rme {
namespace {

std::vector<uint16_t> random_bf16(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<uint16_t> v(n);
  for (auto& e : v) e = f32_to_bf16(d(rng));
  return v;
}

std::vector<float> random_f32(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

Result<KernelConfig> bf16_config() {
  KernelConfig c = KernelConfig::best();
  if (!cpu_has(Isa::kAvx512)) return invalid_argument("no AVX-512");
  c.isa = Isa::kAvx512;
  return c.with_bf16();
}

TEST(GemmBf16Test, ConfigsWithoutTheInstructionsRefuse) {
  KernelConfig c = KernelConfig::best();
  c.isa = Isa::kScalar;
  const auto r = c.with_bf16();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("avx512"), std::string::npos) << r.status().message();
  EXPECT_EQ(bf16_kernels(c), nullptr);  // bf16 off: the default kernels
  if (cpu_has(Isa::kAvx512) && !cpu_features().avx512bf16) {
    c.isa = Isa::kAvx512;
    EXPECT_FALSE(c.with_bf16().ok());
  }
  if (auto b = bf16_config(); b.ok() && cpu_has(Isa::kAvx2)) {
    EXPECT_FALSE(b->with_isa("avx2").ok());  // bf16 products exist on avx512 only
    EXPECT_NE(b->describe().find("bf16"), std::string::npos);
  }
}

TEST(GemmBf16Test, RoundingMatchesTheReference) {
  auto cfg = bf16_config();
  if (!cfg.ok()) GTEST_SKIP() << "no AVX512-BF16 on this CPU: " << cfg.status().message();
  const Bf16Kernels* k = bf16_kernels(*cfg);
  ASSERT_NE(k, nullptr);
  std::vector<float> x = random_f32(203, 7);
  x[5] = 1.0f + 1.0f / 256;  // a tie: to even
  x[6] = -3.0e38f;
  for (int64_t n : {203, 32, 31, 1}) {
    std::vector<uint16_t> a(n, 0xdead), b(n + 1, 0xbeef);
    bf16_round_ref(x.data(), n, a.data());
    k->round(x.data(), n, b.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(a[i], b[i]) << "n " << n << " i " << i;
    EXPECT_EQ(b[n], 0xbeef) << "wrote past n = " << n;
  }
}

// Every output against the double-precision reference, and bit-identical to a one-token call
// whatever the batch, the row split and the tail of k.
TEST(GemmBf16Test, MatchesReferenceAndIsBatchInvariant) {
  auto cfg = bf16_config();
  if (!cfg.ok()) GTEST_SKIP() << "no AVX512-BF16 on this CPU: " << cfg.status().message();
  const Bf16Kernels* k = bf16_kernels(*cfg);
  ASSERT_NE(k, nullptr);
  for (int64_t n_in : {256, 2048 + 96, 77}) {
    const int64_t n_out = 37, n_tok = 9;
    const auto w = random_bf16(n_out * n_in, 1 + n_in);
    const auto xb = random_bf16(n_tok * n_in, 2 + n_in);
    const auto* wb = reinterpret_cast<const uint8_t*>(w.data());
    const size_t row_bytes = n_in * 2;
    std::vector<float> ref(n_tok * n_out), all(n_tok * n_out), one(n_out);
    bf16_rows_ref(wb, row_bytes, n_out, xb.data(), n_in, n_tok, n_in, ref.data(), n_out);
    k->rows(wb, row_bytes, n_out, xb.data(), n_in, n_tok, n_in, all.data(), n_out);
    for (int64_t t = 0; t < n_tok; ++t) {
      // Rows split unevenly, one token at a time: decode's path.
      k->rows(wb, row_bytes, 5, xb.data() + t * n_in, n_in, 1, n_in, one.data(), n_out);
      k->rows(wb + 5 * row_bytes, row_bytes, n_out - 5, xb.data() + t * n_in, n_in, 1, n_in,
              one.data() + 5, n_out);
      for (int64_t r = 0; r < n_out; ++r) {
        double mag = 0;
        for (int64_t i = 0; i < n_in; ++i)
          mag += std::fabs(bf16_to_f32(w[r * n_in + i]) * bf16_to_f32(xb[t * n_in + i]));
        const float got = all[t * n_out + r];
        ASSERT_NEAR(got, ref[t * n_out + r], 1e-5 * mag + 1e-6) << n_in << " " << t << " " << r;
        ASSERT_EQ(got, one[r]) << "batched != alone: k " << n_in << " token " << t << " row " << r;
      }
    }
  }
}

// matmul under cfg.bf16: f32 activations rounded, BF16 weights through the kernel, the same bits
// for a token alone and in a batch, in the default and the batch-invariant mode.
TEST(GemmBf16Test, MatmulRunsItForEveryBatch) {
  auto cfg = bf16_config();
  if (!cfg.ok()) GTEST_SKIP() << "no AVX512-BF16 on this CPU: " << cfg.status().message();
  const int64_t n_out = 70, n_in = 512, n_tok = 13;
  const auto w = random_bf16(n_out * n_in, 11);
  const auto x = random_f32(n_tok * n_in, 12);
  const MatView mv{DType::kBF16, n_out, n_in, w.data()};
  std::vector<uint16_t> xb(n_tok * n_in);
  bf16_round_ref(x.data(), n_tok * n_in, xb.data());
  std::vector<float> ref(n_tok * n_out);
  bf16_rows_ref(reinterpret_cast<const uint8_t*>(w.data()), n_in * 2, n_out, xb.data(), n_in, n_tok,
                n_in, ref.data(), n_out);
  for (bool inv : {false, true}) {
    KernelConfig c = *cfg;
    c.batch_invariant = inv;
    std::vector<float> all(n_tok * n_out), one(n_out);
    matmul(c, mv, x.data(), n_in, n_tok, all.data(), n_out, ThreadPool::global());
    for (int64_t t = 0; t < n_tok; ++t) {
      matmul(c, mv, x.data() + t * n_in, n_in, 1, one.data(), n_out, ThreadPool::global());
      for (int64_t r = 0; r < n_out; ++r) {
        ASSERT_EQ(all[t * n_out + r], one[r]) << inv << " " << t << " " << r;
        ASSERT_NEAR(one[r], ref[t * n_out + r], 1e-3);
      }
    }
    // The bf16 products differ from the f32-activation kernel (activations rounded): the mode
    // really ran.
    KernelConfig plain = c;
    plain.bf16 = false;
    std::vector<float> f32(n_out);
    matmul(plain, mv, x.data(), n_in, 1, f32.data(), n_out, ThreadPool::global());
    matmul(c, mv, x.data(), n_in, 1, one.data(), n_out, ThreadPool::global());
    int differ = 0;
    for (int64_t r = 0; r < n_out; ++r) differ += one[r] != f32[r];
    EXPECT_GT(differ, n_out / 2);
  }
}

// The interleaved layout: an exact round trip; matmul over it (groups kernel, rows kernel for the
// rows after the groups) against the reference, the same bits alone and batched; and under a
// config without bf16 products, restored rows and the default kernels.
TEST(GemmBf16Test, InterleavedGroupsMatchReferenceAndAreBatchInvariant) {
  const int64_t n_out = 16 * 5 + 7, n_in = 2 * 333, n_tok = 29;  // odd groups, a tail, odd pairs
  const auto w = random_bf16(n_out * n_in, 21);
  std::vector<uint16_t> packed(w.size()), back(w.size());
  const auto* wb = reinterpret_cast<const uint8_t*>(w.data());
  auto* pb = reinterpret_cast<uint8_t*>(packed.data());
  interleave_rows16(DType::kBF16, wb, n_out, n_in, pb);
  EXPECT_NE(packed, w);
  deinterleave_rows16(DType::kBF16, pb, n_out, n_in, 0, n_out,
                      reinterpret_cast<uint8_t*>(back.data()));
  EXPECT_EQ(back, w);
  const MatView mv{DType::kBF16, n_out, n_in, packed.data(), WeightLayout::kRows16};
  const MatView rows{DType::kBF16, n_out, n_in, w.data()};
  const auto x = random_f32(n_tok * n_in, 22);
  KernelConfig plain = KernelConfig::best();
  std::vector<float> want(n_tok * n_out), got(n_tok * n_out);
  matmul(plain, rows, x.data(), n_in, n_tok, want.data(), n_out, ThreadPool::global());
  matmul(plain, mv, x.data(), n_in, n_tok, got.data(), n_out, ThreadPool::global());
  EXPECT_EQ(got, want);  // without bf16 products: the rows restored, the same kernels
  auto cfg = bf16_config();
  if (!cfg.ok()) GTEST_SKIP() << "no AVX512-BF16 on this CPU: " << cfg.status().message();
  EXPECT_TRUE(interleave_helps(*cfg, DType::kBF16));
  EXPECT_FALSE(interleave_helps(plain, DType::kBF16));
  std::vector<uint16_t> xb(n_tok * n_in);
  bf16_round_ref(x.data(), n_tok * n_in, xb.data());
  bf16_rows_ref(wb, n_in * 2, n_out, xb.data(), n_in, n_tok, n_in, want.data(), n_out);
  matmul(*cfg, mv, x.data(), n_in, n_tok, got.data(), n_out, ThreadPool::global());
  std::vector<float> one(n_out);
  for (int64_t t = 0; t < n_tok; ++t) {
    matmul(*cfg, mv, x.data() + t * n_in, n_in, 1, one.data(), n_out, ThreadPool::global());
    for (int64_t r = 0; r < n_out; ++r) {
      ASSERT_NEAR(got[t * n_out + r], want[t * n_out + r], 1e-3) << t << " " << r;
      ASSERT_EQ(got[t * n_out + r], one[r]) << "batched != alone: token " << t << " row " << r;
    }
  }
}

}  // namespace
}  // namespace rme
