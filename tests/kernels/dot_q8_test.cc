// tests/kernels: integer dot products — the VNNI kernel equals the scalar reference (same integer
// block sums), and both approximate the f32 dot product within activation-quantization error.
#include "kernels/dot_q8.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>

#include "kernels/cpu.h"
#include "tensor/quant.h"

namespace rme {
namespace {

TEST(DotQ8Test, QuantizeActivations) {
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = (i - 20) * 0.25f;
  Q8Activations a;
  a.quantize(x.data(), 64, supported_isas().back());
  for (int b = 0; b < 2; ++b) {
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      EXPECT_NEAR(a.q[b * 32 + i] * a.d[b], x[b * 32 + i], a.d[b] / 2 + 1e-6f);
      sum += a.q[b * 32 + i];
    }
    EXPECT_EQ(a.sum[b], static_cast<float>(sum));
  }
  std::vector<float> zeros(32, 0.0f);
  a.quantize(zeros.data(), 32, supported_isas().back());
  EXPECT_EQ(a.d[0], 0.0f);
  EXPECT_EQ(a.q[0], 0);
}

// Every ISA's quantizer is bit-identical to the scalar reference: ties at .5 (round to even),
// values at the block maximum, negative maxima, all-zero and denormal blocks.
TEST(DotQ8Test, QuantizeEqualsReferenceExactly) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0, 3);
  const int64_t k = 32 * 9;
  std::vector<float> x(k);
  for (auto& v : x) v = nd(rng);
  for (int i = 0; i < 32; ++i) x[i] = (i - 16) * 0.5f;  // 127/8 multiples: many .5 ties
  for (int i = 32; i < 64; ++i) x[i] = 0.0f;
  for (int i = 64; i < 96; ++i) x[i] = 1e-40f * (i - 70);
  x[100] = -50.0f;
  Q8Activations a, b;
  b.quantize_ref(x.data(), k);
  for (Isa isa : supported_isas()) {
    a.quantize(x.data(), k, isa);
    EXPECT_EQ(a.q, b.q) << isa_name(isa);
    EXPECT_EQ(a.d, b.d) << isa_name(isa);
    EXPECT_EQ(a.sum, b.sum) << isa_name(isa);
  }
}

TEST(DotQ8Test, KernelsMatchReference) {
  const KernelConfig& best = KernelConfig::best();
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 1);
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    // Block counts 1-3, 7, 12 (8 + 4), 14 (8 + 4 + 2), 64, 65: every unrolled path and tail.
    for (int64_t k : {32, 64, 96, 224, 384, 448, 2048, 2080}) {
      std::vector<float> wf(k), x(k);
      for (auto& v : wf) v = nd(rng);
      for (auto& v : x) v = nd(rng);
      std::vector<uint8_t> w(dtype_row_bytes(t, k));
      quantize_row(t, wf.data(), w.data(), k);
      std::vector<float> deq(k);
      dequantize_row(t, w.data(), deq.data(), k);
      Q8Activations a;
      a.quantize(x.data(), k, best.isa);
      const float ref = dot_q8_ref(t)(w.data(), a.q.data(), a.d.data(), a.sum.data(), k);
      double exact = 0, norm = 0;
      for (int64_t i = 0; i < k; ++i)
        exact += double{deq[i]} * x[i], norm += std::fabs(deq[i] * x[i]);
      // 8-bit activations: error well under 1% of the sum of |terms|.
      EXPECT_NEAR(ref, exact, 0.01 * norm) << dtype_name(t) << " k=" << k;
      // Every variant this CPU runs (Q4_0: VNNI and, with VBMI, the byte-permute one).
      const std::vector<DotQ8Fn> all = dot_q8_all(t);
      if (all.empty())
        GTEST_LOG_(INFO) << "no per-row integer kernel for " << dtype_name(t)
                         << " on this CPU (AVX2: GemmMatchesTheReferencePerRowAndToken)";
      for (size_t v = 0; v < all.size(); ++v) {
        const float got = all[v](w.data(), a.q.data(), a.d.data(), a.sum.data(), k);
        EXPECT_NEAR(got, ref, 1e-4 * (1 + std::fabs(ref)))
            << dtype_name(t) << " k=" << k << " variant " << v;
      }
      if (const DotQ8Fn used = dot_q8_best(best, t)) {
        if (best.isa == Isa::kAvx512) {
          EXPECT_EQ(used, all.back()) << "the newest variant is the one used";
        } else {
          EXPECT_NE(std::find(all.begin(), all.end(), used), all.end());
        }
      }
    }
  }
  EXPECT_EQ(dot_q8_ref(DType::kF16), nullptr);
  EXPECT_EQ(dot_q8_best(best, DType::kF32), nullptr);
  KernelConfig off = best;
  off.int8 = false;
  EXPECT_EQ(dot_q8_best(off, DType::kQ4_0), nullptr);
}

// The integer matrix product agrees with the scalar reference for every (row, token), on shapes
// with partial tiles (rows beyond whole 16-row panels, a lone panel, token counts that are not a
// multiple of the tile) and an odd number of blocks; rows long enough that the AVX2 kernel packs
// one 8-row group per pass; output rows strided, with the padding between them left alone. Every
// ISA's kernel (AVX2, AVX-512 VNNI: Q4_0 and Q8_0), Q8_0 weights of -128 included.
TEST(DotQ8Test, GemmMatchesTheReferencePerRowAndToken) {
  int tested = 0;
  for (Isa isa : supported_isas())
    for (DType t : {DType::kQ4_0, DType::kQ8_0}) {
      KernelConfig cfg = KernelConfig::best();
      cfg.isa = isa;
      KernelConfig inv_cfg = cfg;
      inv_cfg.batch_invariant = true;
      // The fastest product, and the batch-invariant one (AVX-512 VNNI has its own).
      for (const GemmQ8Fn gemm : {gemm_q8_best(cfg, t), gemm_q8_invariant(inv_cfg, t)}) {
        if (gemm == nullptr) continue;
        ++tested;
        for (auto [k, n_rows, n_tok] : std::vector<std::array<int64_t, 3>>{{32, 7, 6},
                                                                           {96, 37, 9},
                                                                           {256, 70, 6},
                                                                           {160, 16, 1},
                                                                           {64, 48, 11},
                                                                           {64, 48, 2},
                                                                           {64, 35, 1},
                                                                           {12320, 20, 5}}) {
          std::mt19937 rng(5);
          std::normal_distribution<float> nd(0, 1);
          std::vector<float> wf(n_rows * k), xf(n_tok * k);
          for (auto& v : wf) v = nd(rng);
          for (auto& v : xf) v = nd(rng);
          const size_t rb = dtype_row_bytes(t, k);
          std::vector<uint8_t> w(rb * n_rows);
          for (int64_t r = 0; r < n_rows; ++r) quantize_row(t, &wf[r * k], w.data() + r * rb, k);
          if (t ==
              DType::kQ8_0)  // -128 (never written by quantize_row, legal in a file): |w| = 128
            for (int64_t r = 0; r < n_rows; r += 3)
              reinterpret_cast<Q8_0Block*>(w.data() + r * rb)->q[5] = -128;
          std::vector<Q8Activations> xs(n_tok);
          for (int64_t i = 0; i < n_tok; ++i) xs[i].quantize(&xf[i * k], k, isa);
          const int64_t ys = n_rows + 3;
          std::vector<float> y(n_tok * ys, -1);
          gemm(w.data(), rb, n_rows, xs.data(), n_tok, k, y.data(), ys);
          for (int64_t i = 0; i < n_tok; ++i)
            for (int64_t r = 0; r < ys; ++r) {
              if (r >= n_rows) {
                ASSERT_EQ(y[i * ys + r], -1.0f) << "padding written";
                continue;
              }
              const float want = dot_q8_ref(t)(w.data() + r * rb, xs[i].q.data(), xs[i].d.data(),
                                               xs[i].sum.data(), k);
              EXPECT_NEAR(y[i * ys + r], want, 1e-4f * (1 + std::fabs(want)))
                  << isa_name(isa) << " " << dtype_name(t) << " k " << k << " rows " << n_rows
                  << " row " << r << " token " << i;
            }
        }
      }
    }
  if (tested == 0) GTEST_SKIP() << "no integer matrix kernel on this CPU (AVX2 or AVX-512 VNNI)";
}

}  // namespace
}  // namespace rme
