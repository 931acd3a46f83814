// tests/kernels: K-quants — rme's quantizers land within each type's expected error, the AVX2 and
// AVX-512 VNNI integer kernels agree with the scalar reference (exact integer super-block sums) to
// float rounding and is bit-identical whatever the batch, and both approximate the f32 product.
#include "kernels/dot_kquant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "tensor/kquant.h"
#include "tensor/quant.h"

namespace rme {
namespace {

constexpr DType kTypes[] = {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

std::vector<float> gaussian(int64_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

double rel_rms(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) e += (a[i] - b[i]) * double(a[i] - b[i]), n += b[i] * b[i];
  return std::sqrt(e / n);
}

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(dtype_row_bytes(t, static_cast<int64_t>(x.size())));
  quantize_row(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

// Bounds: the relative RMS error of llama.cpp's own Q4_K / Q5_K / Q6_K on the k-* fixtures'
// random weights (7.2%, 3.6%, 1.9%) plus a tenth. On identical data (a tinyllama-shape model)
// rme's Q4_K error is within 1% of llama-quantize's and its Q6_K's 6% lower (docs/formats.md).
TEST(KQuantTest, QuantizersMeetLlamaCppsError) {
  const std::vector<float> x = gaussian(256 * 64, 1, 0.02f);
  const double bound[] = {0.072 * 1.1, 0.036 * 1.1, 0.019 * 1.1};
  for (int i = 0; i < 3; ++i) {
    const std::vector<uint8_t> q = quantize(kTypes[i], x);
    std::vector<float> back(x.size());
    dequantize_row(kTypes[i], q.data(), back.data(), static_cast<int64_t>(x.size()));
    const double rel = rel_rms(back, x);
    EXPECT_LT(rel, bound[i]) << dtype_name(kTypes[i]);
    RecordProperty(std::string(dtype_name(kTypes[i])), std::to_string(rel));
  }
}

// Edge cases: zero blocks, constant blocks, one outlier, all-positive (the min clamps to 0).
TEST(KQuantTest, QuantizersHandleDegenerateBlocks) {
  std::vector<float> x(256 * 4, 0.0f);
  for (int i = 256; i < 512; ++i) x[i] = 0.5f;
  for (int i = 512; i < 768; ++i) x[i] = (i == 600) ? 30.0f : 0.01f * (i % 7);
  for (int i = 768; i < 1024; ++i) x[i] = 1.0f + 0.001f * i;
  for (DType t : kTypes) {
    const std::vector<uint8_t> q = quantize(t, x);
    std::vector<float> back(x.size());
    dequantize_row(t, q.data(), back.data(), static_cast<int64_t>(x.size()));
    for (int i = 0; i < 256; ++i) ASSERT_EQ(back[i], 0.0f) << dtype_name(t);
    for (size_t i = 256; i < x.size(); ++i)
      ASSERT_TRUE(std::isfinite(back[i])) << dtype_name(t) << " " << i;
    EXPECT_NEAR(back[600], 30.0f, 0.5f) << dtype_name(t);
    for (int i = 768; i < 1024; ++i) EXPECT_NEAR(back[i], x[i], 0.05f) << dtype_name(t) << i;
  }
}

TEST(KQuantTest, ActivationsQuantizePerSuperBlock) {
  const std::vector<float> x = gaussian(512, 2);
  Q8KActivations a;
  a.quantize(x.data(), 512, Isa::kScalar);
  ASSERT_EQ(a.d.size(), 2u);
  ASSERT_EQ(a.bsum.size(), 32u);
  for (int i = 0; i < 512; ++i) EXPECT_NEAR(a.q[i] * a.d[i / 256], x[i], a.d[i / 256] / 2 + 1e-6f);
  for (int g = 0; g < 32; ++g) {
    int s = 0;
    for (int i = 0; i < 16; ++i) s += a.q[16 * g + i];
    EXPECT_EQ(a.bsum[g], s);
  }
}

// Every ISA's quantizer equals the scalar reference bit for bit: ties, zeros, maxima, tiny values.
TEST(KQuantTest, ActivationQuantizersEqualTheReference) {
  std::vector<float> x = gaussian(256 * 5, 8, 3.0f);
  for (int i = 0; i < 256; ++i) x[i] = (i - 128) * 0.5f;  // many exact .5 ties after scaling
  for (int i = 256; i < 512; ++i) x[i] = 0.0f;
  for (int i = 512; i < 768; ++i) x[i] = 1e-40f * (i - 600);
  x[900] = -1000.0f;
  Q8KActivations a, b;
  b.quantize_ref(x.data(), static_cast<int64_t>(x.size()));
  for (Isa isa : supported_isas()) {
    a.quantize(x.data(), static_cast<int64_t>(x.size()), isa);
    EXPECT_EQ(a.q, b.q) << isa_name(isa);
    EXPECT_EQ(a.d, b.d) << isa_name(isa);
    EXPECT_EQ(a.bsum, b.bsum) << isa_name(isa);
  }
}

struct Case {
  int64_t rows, tok, k;
};

// Every integer K-quant kernel this CPU runs, by name.
std::vector<std::pair<const char*, GemmKFn (*)(DType)>> kernels() {
  std::vector<std::pair<const char*, GemmKFn (*)(DType)>> k;
#if defined(__x86_64__)
  if (cpu_has(Isa::kAvx2)) k.emplace_back("avx2", gemm_kquant_avx2);
  if (cpu_has(Isa::kAvx512) && cpu_features().avx512vnni)
    k.emplace_back("avx512-vnni", gemm_kquant_avx512);
#endif
  return k;
}

// Against the reference, and each token's outputs the same bits alone, in the batch and with the
// rows split in pieces: 1 and 2 tokens (read in place on AVX-512), more (packed), partial groups.
TEST(KQuantTest, IntegerKernelsMatchReferenceAndAreBatchInvariant) {
  if (kernels().empty()) GTEST_SKIP() << "no K-quant integer kernel on this CPU";
  for (auto [name, kernel] : kernels()) {
    for (DType t : kTypes) {
      for (Case c : {Case{1, 1, 256}, Case{5, 3, 512}, Case{37, 9, 1024}, Case{16, 4, 2816},
                     Case{48, 2, 512}, Case{33, 1, 768}, Case{64, 6, 256}}) {
        const std::vector<float> w = gaussian(c.rows * c.k, 3, 0.05f);
        const std::vector<uint8_t> q = quantize(t, w);
        const size_t row_bytes = dtype_row_bytes(t, c.k);
        std::vector<Q8KActivations> xs(c.tok);
        const std::vector<float> x = gaussian(c.tok * c.k, 4);
        for (int64_t i = 0; i < c.tok; ++i) xs[i].quantize(x.data() + i * c.k, c.k, Isa::kScalar);
        std::vector<float> ref(c.rows * c.tok), got(c.rows * c.tok), one(c.rows * c.tok),
            split(c.rows * c.tok);
        const GemmKFn f = kernel(t);
        gemm_kquant_ref(t)(q.data(), row_bytes, c.rows, xs.data(), c.tok, c.k, ref.data(), c.rows);
        f(q.data(), row_bytes, c.rows, xs.data(), c.tok, c.k, got.data(), c.rows);
        for (int64_t i = 0; i < c.tok; ++i)  // token by token
          f(q.data(), row_bytes, c.rows, xs.data() + i, 1, c.k, one.data() + i * c.rows, c.rows);
        for (int64_t r0 = 0; r0 < c.rows; r0 += 7)  // rows in pieces of 7
          f(q.data() + r0 * row_bytes, row_bytes, std::min<int64_t>(7, c.rows - r0), xs.data(),
            c.tok, c.k, split.data() + r0, c.rows);
        for (size_t i = 0; i < ref.size(); ++i) {
          ASSERT_NEAR(got[i], ref[i], 1e-5f * (1 + std::fabs(ref[i])))
              << name << " " << dtype_name(t) << " rows " << c.rows << " k " << c.k << " i " << i;
          ASSERT_EQ(got[i], one[i]) << name << " " << dtype_name(t) << ": batched != one token";
          ASSERT_EQ(got[i], split[i]) << name << " " << dtype_name(t) << ": split rows differ";
        }
        // And the integer product approximates the f32 one (activation quantization error only).
        std::vector<float> wf(w.size());
        dequantize_row(t, q.data(), wf.data(), static_cast<int64_t>(w.size()));
        for (int64_t r = 0; r < c.rows; ++r)
          for (int64_t i = 0; i < c.tok; ++i) {
            double fl = 0, norm = 0;
            for (int64_t j = 0; j < c.k; ++j)
              fl += double(wf[r * c.k + j]) * x[i * c.k + j],
                  norm += std::fabs(double(wf[r * c.k + j]) * x[i * c.k + j]);
            ASSERT_NEAR(ref[i * c.rows + r], fl, 0.02 * norm) << dtype_name(t);
          }
      }
    }
  }
}

// The largest integers the formats allow (every quant at its top, activations at +-127 of one
// sign, the biggest scales) stay exact: no int32 or int16 step overflows.
TEST(KQuantTest, IntegerKernelsAreExactAtTheFormatsExtremes) {
  if (kernels().empty()) GTEST_SKIP() << "no K-quant integer kernel on this CPU";
  const int64_t rows = 32, k = 512;
  for (auto [name, kernel] : kernels()) {
    for (DType t : kTypes) {
      for (float sign : {1.0f, -1.0f}) {
        std::vector<float> w(rows * k);
        for (int64_t i = 0; i < rows * k; ++i) w[i] = (i % 3 == 0 ? -1.0f : 1.0f) * (1 + i % 7);
        std::vector<uint8_t> q = quantize(t, w);
        std::vector<Q8KActivations> xs(3);
        const std::vector<float> x(k, sign);
        for (auto& a : xs) a.quantize(x.data(), k, Isa::kScalar);
        std::vector<float> ref(rows * 3), got(rows * 3);
        const size_t row_bytes = dtype_row_bytes(t, k);
        gemm_kquant_ref(t)(q.data(), row_bytes, rows, xs.data(), 3, k, ref.data(), rows);
        for (int64_t n : {1, 3}) {
          kernel(t)(q.data(), row_bytes, rows, xs.data(), n, k, got.data(), rows);
          for (int64_t i = 0; i < n * rows; ++i)
            ASSERT_NEAR(got[i], ref[i], 1e-5f * (1 + std::fabs(ref[i])))
                << name << " " << dtype_name(t) << " tokens " << n;
        }
      }
    }
  }
}

// matmul routes K-quants to the integer kernel (int8 on) and to the f32 reference dot (int8 off);
// the two agree within activation-quantization error on every ISA this CPU runs.
TEST(KQuantTest, MatmulIntegerPathMatchesFloatPath) {
  const int64_t rows = 24, k = 768, tok = 5;
  const std::vector<float> w = gaussian(rows * k, 5, 0.05f), x = gaussian(tok * k, 6);
  for (DType t : kTypes) {
    const std::vector<uint8_t> q = quantize(t, w);
    const MatView v{t, rows, k, q.data()};
    for (Isa isa : supported_isas()) {
      KernelConfig f32 = KernelConfig::best(), i8 = KernelConfig::best();
      f32.isa = i8.isa = isa;
      f32.int8 = false;
      std::vector<float> a(rows * tok), b(rows * tok);
      matmul(f32, v, x.data(), k, tok, a.data(), rows, ThreadPool::global());
      matmul(i8, v, x.data(), k, tok, b.data(), rows, ThreadPool::global());
      double e = 0, n = 0;
      for (size_t i = 0; i < a.size(); ++i)
        e += (a[i] - b[i]) * double(a[i] - b[i]), n += a[i] * a[i];
      EXPECT_LT(std::sqrt(e / n), 0.02) << dtype_name(t) << " " << isa_name(isa);
    }
  }
}

}  // namespace
}  // namespace rme
