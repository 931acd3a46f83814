// tests/kernels: the 16-row interleaved layout — exact round trip, and matmul over it giving the
// rows' bits under the batch-invariant and decode kernels on every ISA this CPU runs.
#include "kernels/interleave.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/dot_kquant.h"
#include "kernels/dot_q8.h"
#include "kernels/matmul.h"
#include "tensor/quant.h"

namespace rme {
namespace {

std::vector<uint8_t> random_rows(DType t, int64_t rows, int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> w(k);
  std::vector<uint8_t> out(dtype_row_bytes(t, k) * rows);
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : w) v = d(rng);
    if (r == 3) std::fill(w.begin(), w.end(), -1.0f);  // the format's extreme quants
    quantize_row(t, w.data(), out.data() + r * dtype_row_bytes(t, k), k);
  }
  return out;
}

// A random matrix as rows and in the interleaved form, with a view of each.
struct Both {
  std::vector<uint8_t> rows, packed;
  MatView wr, wi;
  Both(DType t, int64_t n_out, int64_t k, uint64_t seed)
      : rows(random_rows(t, n_out, k, seed)), packed(rows.size()) {
    interleave_rows16(t, rows.data(), n_out, k, packed.data());
    wr = MatView{t, n_out, k, rows.data()};
    wi = MatView{t, n_out, k, packed.data(), WeightLayout::kRows16};
  }
};

KernelConfig config(Isa isa, bool batch_invariant) {
  KernelConfig c = KernelConfig::best();
  c.isa = isa;
  c.batch_invariant = batch_invariant;
  return c;
}

TEST(InterleaveTest, RoundTripsExactlyAndKeepsTheSize) {
  for (DType t : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kF16,
                  DType::kBF16}) {
    for (int64_t rows : {1, 15, 16, 37, 64}) {
      const int64_t k = dtype_is_kquant(t) ? 512 : 96;
      const std::vector<uint8_t> src = random_rows(t, rows, k, 7 + rows);
      std::vector<uint8_t> packed(src.size()), back(src.size());
      interleave_rows16(t, src.data(), rows, k, packed.data());
      if (rows >= 16) {
        EXPECT_NE(packed, src) << dtype_name(t) << " rows " << rows;
      }
      deinterleave_rows16(t, packed.data(), rows, k, 0, rows, back.data());
      EXPECT_EQ(back, src) << dtype_name(t) << " rows " << rows;
      // Any run of whole groups on its own.
      if (rows > 16) {
        std::vector<uint8_t> part((rows - 16) * dtype_row_bytes(t, k));
        deinterleave_rows16(t, packed.data(), rows, k, 16, rows, part.data());
        EXPECT_TRUE(std::equal(part.begin(), part.end(), src.begin() + 16 * dtype_row_bytes(t, k)));
      }
    }
  }
  EXPECT_TRUE(interleavable(DType::kQ6_K));
  EXPECT_TRUE(interleavable(DType::kF16));
  EXPECT_FALSE(interleavable(DType::kF32));
}

// An interleaved matrix gives the rows' bits wherever the rows' kernel is batch-invariant (the
// batch-invariant mode, and decode: one or two tokens) on every ISA, whatever the batch, and
// agrees with the scalar reference. Rows 70 = 4 whole groups + 6 rows after them (54: an odd
// group count; 48: no rows after); 224 columns = 7 blocks.
TEST(InterleaveTest, MatmulOverInterleavedGivesTheRowsBits) {
  ThreadPool pool(2);
  const int64_t k = 224;
  for (auto [t, n_out] : std::vector<std::pair<DType, int64_t>>{
           {DType::kQ4_0, 70}, {DType::kQ8_0, 70}, {DType::kQ4_0, 54}, {DType::kQ8_0, 48}}) {
    const Both m(t, n_out, k, 11);
    const std::vector<uint8_t>& rows = m.rows;
    const MatView &wr = m.wr, &wi = m.wi;
    for (Isa isa : supported_isas()) {
      for (bool inv : {true, false}) {
        const KernelConfig cfg = config(isa, inv);
        for (int64_t n_tok : {1, 2, 3, 4, 5, 9, 33}) {
          if (!inv && n_tok > 2) continue;  // prefill outside the mode: other kernels on rows
          std::vector<float> x(n_tok * k), yr(n_tok * n_out), yi(n_tok * n_out);
          for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * i) * (1 + i % 5);
          matmul(cfg, wr, x.data(), k, n_tok, yr.data(), n_out, pool);
          matmul(cfg, wi, x.data(), k, n_tok, yi.data(), n_out, pool);
          for (int64_t i = 0; i < n_tok * n_out; ++i)
            ASSERT_EQ(yi[i], yr[i]) << isa_name(isa) << " " << dtype_name(t) << " inv " << inv
                                    << " n_tok " << n_tok << " at " << i;
          // The scalar reference on the rows (exact integer sums), to float rounding, where
          // this ISA's kernel quantizes activations (else its float path has its own tests).
          const bool int8_path =
              gemm_q8_decode(cfg, t) != nullptr || gemm_q8_invariant(cfg, t) != nullptr;
          Q8Activations xq;
          for (int64_t tk = 0; tk < n_tok && int8_path; ++tk) {
            xq.quantize_ref(x.data() + tk * k, k);
            for (int64_t r = 0; r < n_out; ++r) {
              const float ref = dot_q8_ref(t)(rows.data() + r * dtype_row_bytes(t, k), xq.q.data(),
                                              xq.d.data(), xq.sum.data(), k);
              ASSERT_NEAR(yi[tk * n_out + r], ref, 1e-3f * (1 + std::fabs(ref)))
                  << isa_name(isa) << " " << dtype_name(t) << " row " << r;
            }
          }
        }
      }
    }
  }
}

// Prefill outside the batch-invariant mode reads interleaved matrices with the same kernel, so
// it agrees with the rows' faster prefill product to float rounding.
TEST(InterleaveTest, DefaultPrefillOverInterleavedAgreesWithRows) {
  ThreadPool pool(2);
  const int64_t n_out = 48, k = 256, n_tok = 12;
  for (DType t : {DType::kQ4_0, DType::kQ8_0}) {
    const std::vector<uint8_t> rows = random_rows(t, n_out, k, 5);
    std::vector<uint8_t> packed(rows.size());
    interleave_rows16(t, rows.data(), n_out, k, packed.data());
    std::vector<float> x(n_tok * k), yr(n_tok * n_out), yi(n_tok * n_out);
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.21f * i);
    for (Isa isa : supported_isas()) {
      const KernelConfig cfg = config(isa, false);
      matmul(cfg, MatView{t, n_out, k, rows.data()}, x.data(), k, n_tok, yr.data(), n_out, pool);
      matmul(cfg, MatView{t, n_out, k, packed.data(), WeightLayout::kRows16}, x.data(), k, n_tok,
             yi.data(), n_out, pool);
      for (int64_t i = 0; i < n_tok * n_out; ++i)
        ASSERT_NEAR(yi[i], yr[i], 1e-4f * (1 + std::fabs(yr[i])))
            << isa_name(isa) << " " << dtype_name(t) << " at " << i;
    }
  }
}

// K-quants: on AVX-512 VNNI the interleaved kernel gives the AVX-512 row kernel's bits for any
// batch (decode included, where rows run the AVX2 kernel) and is batch-invariant in every mode;
// elsewhere the rows are restored and give their own bits. Rows 37 = 2 groups + 5; 768 columns =
// 3 super-blocks.
TEST(InterleaveTest, KQuantMatmulOverInterleavedGivesTheAvx512RowBits) {
  ThreadPool pool(2);
  for (auto [n_out, k] :
       std::vector<std::pair<int64_t, int64_t>>{{37, 768}, {96, 256}, {256, 512}}) {
    for (DType t : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
      const Both m(t, n_out, k, 21);
      const std::vector<uint8_t>& rows = m.rows;
      const MatView &wr = m.wr, &wi = m.wi;
      for (Isa isa : supported_isas()) {
        for (bool inv : {true, false}) {
          const KernelConfig cfg = config(isa, inv);
          // The interleaved kernel runs whenever this config has it, in either mode.
          const bool helps = gemm_kquant_interleaved(cfg, t) != nullptr;
          if (helps) {
            EXPECT_EQ(interleave_helps(cfg, t), inv);  // made at load for serving only
          }
          for (int64_t n_tok : {1, 2, 3, 4, 5, 9}) {
            std::vector<float> x(n_tok * k), yr(n_tok * n_out), yi(n_tok * n_out), y1(n_out);
            for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.29f * i) * (1 + i % 7);
            matmul(cfg, wi, x.data(), k, n_tok, yi.data(), n_out, pool);
            if (helps) {
              std::vector<Q8KActivations> xs(n_tok);
              for (int64_t tk = 0; tk < n_tok; ++tk) xs[tk].quantize(x.data() + tk * k, k, isa);
              gemm_kquant_avx512(t)(rows.data(), dtype_row_bytes(t, k), n_out, xs.data(), n_tok, k,
                                    yr.data(), n_out);
            } else {
              matmul(cfg, wr, x.data(), k, n_tok, yr.data(), n_out, pool);
            }
            for (int64_t i = 0; i < n_tok * n_out; ++i)
              ASSERT_EQ(yi[i], yr[i]) << isa_name(isa) << " " << dtype_name(t) << " inv " << inv
                                      << " n_tok " << n_tok << " at " << i;
            if (!helps && !inv) continue;  // restored rows: prefill's kernel may differ by batch
            for (int64_t tk = 0; tk < n_tok; ++tk) {
              matmul(cfg, wi, x.data() + tk * k, k, 1, y1.data(), n_out, pool);
              for (int64_t r = 0; r < n_out; ++r)
                ASSERT_EQ(yi[tk * n_out + r], y1[r]) << isa_name(isa) << " " << dtype_name(t);
            }
            if (!cfg.int8 || gemm_kquant(cfg, t, n_tok) == nullptr) continue;
            std::vector<Q8KActivations> xs(n_tok);
            for (int64_t tk = 0; tk < n_tok; ++tk) xs[tk].quantize_ref(x.data() + tk * k, k);
            std::vector<float> ref(n_tok * n_out);
            gemm_kquant_ref(t)(rows.data(), dtype_row_bytes(t, k), n_out, xs.data(), n_tok, k,
                               ref.data(), n_out);
            for (int64_t i = 0; i < n_tok * n_out; ++i)
              ASSERT_NEAR(yi[i], ref[i], 1e-3f * (1 + std::fabs(ref[i])))
                  << isa_name(isa) << " " << dtype_name(t) << " at " << i;
          }
        }
      }
    }
  }
}

// F16 groups (gemm_f16_interleaved_avx512.cc): against the double-precision reference, the same
// bits alone and batched (odd group counts, a tail of rows, every token-tile width), in both
// modes; under configs without the kernel, the rows restored and their bits.
TEST(InterleaveTest, F16GroupsMatchReferenceAndAreBatchInvariant) {
  const int64_t n_out = 16 * 7 + 5, n_in = 200, n_tok = 23;
  Both m(DType::kF16, n_out, n_in, 31);
  std::mt19937_64 rng(32);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> x(n_tok * n_in);
  for (auto& v : x) v = d(rng);
  for (Isa isa : supported_isas()) {
    for (bool inv : {false, true}) {
      const KernelConfig c = config(isa, inv);
      std::vector<float> rows(n_tok * n_out), got(n_tok * n_out), one(n_out);
      matmul(c, m.wr, x.data(), n_in, n_tok, rows.data(), n_out, ThreadPool::global());
      matmul(c, m.wi, x.data(), n_in, n_tok, got.data(), n_out, ThreadPool::global());
      if (float_groups(c, DType::kF16) == nullptr) {
        EXPECT_EQ(got, rows) << isa_name(isa);  // restored rows, the same kernels
        continue;
      }
      EXPECT_TRUE(interleave_helps(c, DType::kF16));
      for (int64_t t = 0; t < n_tok; ++t) {
        matmul(c, m.wi, x.data() + t * n_in, n_in, 1, one.data(), n_out, ThreadPool::global());
        for (int64_t r = 0; r < n_out; ++r) {
          const float ref = row_kernels_ref().dot[static_cast<int>(DType::kF16)](
              m.rows.data() + r * dtype_row_bytes(DType::kF16, n_in), x.data() + t * n_in, n_in);
          ASSERT_NEAR(got[t * n_out + r], ref, 1e-4 * (1 + std::fabs(ref))) << t << " " << r;
          ASSERT_EQ(got[t * n_out + r], one[r])
              << "batched != alone: " << inv << " " << t << " " << r;
        }
      }
    }
  }
}

}  // namespace
}  // namespace rme
