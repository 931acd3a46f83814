// tests/kernels: every ISA's row kernels and the matmul driver against the scalar reference, on
// odd sizes and misaligned pointers.
#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>

#include "kernels/dot_q8.h"
#include "kernels/gemm_f32.h"
#include "tensor/quant.h"

namespace rme {
namespace {

struct Data {
  std::vector<float> w, x;
  std::vector<uint8_t> packed;
};

Data make(DType t, int64_t rows, int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0, 1);
  Data out;
  out.w.resize(rows * k);
  out.x.resize(k + 16);
  for (auto& v : out.w) v = d(rng);
  for (auto& v : out.x) v = d(rng);
  out.packed.resize(dtype_row_bytes(t, k) * rows + 64);
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(t, &out.w[r * k], out.packed.data() + r * dtype_row_bytes(t, k), k);
  return out;
}

// The kernels of `isa` with integer activations on or off, batch invariance on or off.
KernelConfig config(Isa isa, bool int8, bool batch_invariant = false) {
  KernelConfig c = KernelConfig::best();
  c.isa = isa;
  c.int8 = int8;
  c.batch_invariant = batch_invariant;
  return c;
}

std::vector<int64_t> sizes_for(DType t) {
  if (dtype_is_quantized(t)) return {32, 64, 96, 160, 320, 1024};
  return {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 257, 1000};
}

class RowKernelTest : public ::testing::TestWithParam<std::tuple<Isa, DType>> {};

TEST_P(RowKernelTest, DotAndDecodeMatchReference) {
  auto [isa, t] = GetParam();
  const RowKernels& ref = row_kernels_ref();
  const RowKernels& k = row_kernels(isa);
  const int ti = static_cast<int>(t);
  for (int64_t n : sizes_for(t)) {
    Data d = make(t, 1, n, static_cast<uint64_t>(n) * 31 + ti);
    for (int misalign : {0, 1, 3}) {  // x offset by floats: unaligned loads must work
      const float* x = d.x.data() + misalign;
      float want = ref.dot[ti](d.packed.data(), x, n);
      float got = k.dot[ti](d.packed.data(), x, n);
      double mag = 0;
      std::vector<float> row(n);
      ref.to_f32[ti](d.packed.data(), row.data(), n);
      for (int64_t i = 0; i < n; ++i) mag += std::fabs(row[i] * x[i]);
      EXPECT_NEAR(got, want, 1e-5 * mag + 1e-6)
          << isa_name(isa) << " " << dtype_name(t) << " n=" << n;
    }
    std::vector<float> a(n), b(n);
    ref.to_f32[ti](d.packed.data(), a.data(), n);
    k.to_f32[ti](d.packed.data(), b.data(), n);
    EXPECT_EQ(a, b) << isa_name(isa) << " " << dtype_name(t) << " n=" << n;
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsasAllTypes, RowKernelTest,
                         ::testing::Combine(::testing::ValuesIn(supported_isas()),
                                            ::testing::Values(DType::kF32, DType::kF16,
                                                              DType::kBF16, DType::kQ8_0,
                                                              DType::kQ4_0)),
                         [](const auto& info) {
                           return std::string(isa_name(std::get<0>(info.param))) + "_" +
                                  std::string(dtype_name(std::get<1>(info.param)));
                         });

TEST(MatmulTest, BatchedAndSingleTokenMatchNaiveOnEveryIsa) {
  ThreadPool pool(3);
  for (Isa isa : supported_isas()) {
    const KernelConfig cfg = config(isa, /*int8=*/true);  // the integer path where the CPU has it
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
      const int64_t n_out = 37, n_in = dtype_is_quantized(t) ? 96 : 45;
      Data d = make(t, n_out, n_in, 5);
      std::vector<float> deq(n_out * n_in);
      for (int64_t r = 0; r < n_out; ++r)
        dequantize_row(t, d.packed.data() + r * dtype_row_bytes(t, n_in), &deq[r * n_in], n_in);
      for (int64_t n_tok : {1, 2, 5}) {
        std::vector<float> x(n_tok * n_in);
        for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * i);
        std::vector<float> y(n_tok * n_out);
        matmul(cfg, MatView{t, n_out, n_in, d.packed.data()}, x.data(), n_in, n_tok, y.data(),
               n_out, pool);
        // Decode, prefill of 4+ tokens with an integer matrix kernel, and any batch with the one
        // integer kernel for every size (AVX2 Q4_0) quantize the activations too; then the
        // reference is the scalar integer dot product on the same quantized activations.
        const bool integer = (n_tok == 1 && dot_q8_best(cfg, t) != nullptr) ||
                             gemm_q8_invariant(cfg, t) != nullptr ||
                             (n_tok <= 2 && gemm_q8_decode(cfg, t) != nullptr) ||
                             (n_tok >= 4 && gemm_q8_best(cfg, t) != nullptr);
        const DotQ8Fn int8 = integer ? dot_q8_ref(t) : nullptr;
        for (int64_t tk = 0; tk < n_tok; ++tk)
          for (int64_t r = 0; r < n_out; ++r) {
            double s = 0;
            if (int8) {
              Q8Activations xq;
              xq.quantize(x.data() + tk * n_in, n_in, isa);
              s = dot_q8_ref(t)(d.packed.data() + r * dtype_row_bytes(t, n_in), xq.q.data(),
                                xq.d.data(), xq.sum.data(), n_in);
            } else {
              for (int64_t i = 0; i < n_in; ++i)
                s += static_cast<double>(deq[r * n_in + i]) * x[tk * n_in + i];
            }
            EXPECT_NEAR(y[tk * n_out + r], s, 1e-4) << isa_name(isa) << " " << dtype_name(t);
          }
      }
    }
  }
}

#if defined(__x86_64__)  // the AVX-512 panel GEMM is built on x86-64 only
// The float panel GEMM against a double-precision reference per (row, token): rows in whole
// 32-row units, a lone 16-row group and a remainder below 16; columns with and without a partial
// 16-column transpose block; token counts around the 12-token tile; strided x and y.
TEST(MatmulTest, FloatPanelGemmMatchesReference) {
  if (!cpu_has(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512";
  const RowKernels& kern = row_kernels(Isa::kAvx512);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16})
    for (auto [n_rows, k, n_tok] : std::vector<std::array<int64_t, 3>>{
             {16, 16, 1}, {37, 45, 5}, {48, 64, 12}, {70, 100, 13}, {96, 33, 25}}) {
      Data d = make(t, n_rows, k, 11);
      const size_t rb = dtype_row_bytes(t, k);
      std::vector<float> deq(n_rows * k);
      for (int64_t r = 0; r < n_rows; ++r)
        dequantize_row(t, d.packed.data() + r * rb, &deq[r * k], k);
      const int64_t xs = k + 3, ys = n_rows + 5;
      std::vector<float> x(n_tok * xs), y(n_tok * ys, -7.0f);
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.29f * i);
      std::vector<float> xp(gemm_f32_packed_floats(n_tok, k));
      gemm_f32_pack_tokens(x.data(), xs, 0, n_tok, k, xp.data());
      gemm_f32_avx512(kern.to_f32[static_cast<int>(t)], kern.dot[static_cast<int>(DType::kF32)],
                      d.packed.data(), rb, n_rows, k, x.data(), xs, xp.data(), n_tok, y.data(), ys);
      for (int64_t tk = 0; tk < n_tok; ++tk) {
        for (int64_t r = 0; r < n_rows; ++r) {
          double want = 0;
          for (int64_t i = 0; i < k; ++i) want += double(deq[r * k + i]) * x[tk * xs + i];
          ASSERT_NEAR(y[tk * ys + r], want, 1e-4 * (1 + std::fabs(want)))
              << dtype_name(t) << " rows " << n_rows << " k " << k << " tokens " << n_tok << " row "
              << r << " token " << tk;
        }
        for (int64_t r = n_rows; r < ys; ++r) ASSERT_EQ(y[tk * ys + r], -7.0f);  // padding kept
      }
    }
}
#endif

// In batch-invariant mode a token's outputs are bit-identical to running it alone, on every ISA
// this CPU has, for every dtype, with and without integer activations, whatever the batch size
// (tiles of 1-4 tokens, their remainders, and sizes that would take a matrix-product path
// otherwise). Row lengths leave every tail: quantized 7 blocks (4 + 3), float 77 = 2 * 32 + 8 + 5,
// and 1100 = two 512-element chunks of the float row kernel + 64 + 8 + 4.
TEST(MatmulTest, BatchInvariantModeMatchesSingleTokenBitForBit) {
  ThreadPool pool(2);
  for (Isa isa : supported_isas()) {
    for (bool int8 : {false, true}) {
      const KernelConfig cfg = config(isa, int8, /*batch_invariant=*/true);
      for (auto [t, n_in] : std::vector<std::pair<DType, int64_t>>{{DType::kF32, 77},
                                                                   {DType::kF32, 1100},
                                                                   {DType::kF16, 77},
                                                                   {DType::kF16, 1100},
                                                                   {DType::kBF16, 77},
                                                                   {DType::kQ8_0, 224},
                                                                   {DType::kQ4_0, 224},
                                                                   {DType::kQ4_K, 512},
                                                                   {DType::kQ5_K, 512},
                                                                   {DType::kQ6_K, 512}}) {
        const int64_t n_out = 70;
        Data d = make(t, n_out, n_in, 9);
        for (int64_t n_tok : {1, 2, 3, 4, 5, 17, 64}) {
          std::vector<float> x(n_tok * n_in), y(n_tok * n_out), y1(n_out);
          for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.11f * i);
          const MatView w{t, n_out, n_in, d.packed.data()};
          matmul(cfg, w, x.data(), n_in, n_tok, y.data(), n_out, pool);
          for (int64_t tk = 0; tk < n_tok; ++tk) {
            matmul(cfg, w, x.data() + tk * n_in, n_in, 1, y1.data(), n_out, pool);
            for (int64_t r = 0; r < n_out; ++r)
              ASSERT_EQ(y[tk * n_out + r], y1[r])
                  << isa_name(isa) << " " << dtype_name(t) << " int8 " << int8 << " n_tok " << n_tok
                  << " tok " << tk << " row " << r;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace rme
