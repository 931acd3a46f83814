// kernels: Q8KActivations, the scalar K-quant reference product, and the K-quant kernel dispatch.
#include "kernels/dot_kquant.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "tensor/half.h"
#include "tensor/kquant.h"

namespace rme {

void Q8KActivations::resize(int64_t k) {
  RME_CHECK(k % kKBlock == 0);
  q.resize(static_cast<size_t>(k));
  d.resize(static_cast<size_t>(k / kKBlock));
  bsum.resize(static_cast<size_t>(k / 16));
}

void Q8KActivations::quantize(const float* x, int64_t k, Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {
    resize(k);
    for (int64_t b = 0; b < k / kKBlock; ++b)
      d[b] = quantize_q8k_block_avx2(x + b * kKBlock, q.data() + b * kKBlock, bsum.data() + b * 16);
    return;
  }
#endif
  (void)isa;
  quantize_ref(x, k);
}

void Q8KActivations::quantize_ref(const float* x, int64_t k) {
  resize(k);
  const int64_t nb = k / kKBlock;
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kKBlock;
    float amax = 0;
    for (int i = 0; i < kKBlock; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float db = amax / 127.0f, id = amax > 0 ? 127.0f / amax : 0.0f;
    d[b] = db;
    int8_t* qb = q.data() + b * kKBlock;
    for (int i = 0; i < kKBlock; ++i)
      qb[i] =
          static_cast<int8_t>(std::clamp(static_cast<int>(std::nearbyint(xb[i] * id)), -127, 127));
    for (int g = 0; g < kKBlock / 16; ++g) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += qb[16 * g + i];
      bsum[b * 16 + g] = static_cast<int16_t>(s);
    }
  }
}

namespace {

float f16_at(const uint8_t* p) { return f16_to_f32(static_cast<uint16_t>(p[0] | p[1] << 8)); }

// One super-block of a Q4_K/Q5_K row against one token's block (q: 256 quants, bs: 16 sums):
// sum over sub-blocks j of scale_j * (quants . q) - min_j * (the sub-block's activation sum).
double block_q45(DType t, const uint8_t* b, const int8_t* q, const int16_t* bs, float dx) {
  int64_t isum = 0, imin = 0;
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    kquant_scale_min(j, b + 4, &sc, &m);
    int64_t s = 0;
    for (int i = 32 * j; i < 32 * j + 32; ++i) s += kquant_quant(t, b, i) * q[i];
    isum += sc * s;
    imin += m * (bs[2 * j] + bs[2 * j + 1]);
  }
  return double(dx) * f16_at(b) * isum - double(dx) * f16_at(b + 2) * imin;
}

// One super-block of a Q6_K row: sum over 16-groups of scale * (q - 32) . x.
double block_q6(const uint8_t* b, const int8_t* q, const int16_t* bs, float dx) {
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  int64_t isum = 0, ibias = 0;
  for (int i = 0; i < kKBlock; ++i)
    isum += int64_t{sc[i / 16]} * kquant_quant(DType::kQ6_K, b, i) * q[i];
  for (int g = 0; g < 16; ++g) ibias += int64_t{sc[g]} * bs[g];
  return double(dx) * f16_at(b + 208) * (isum - 32 * ibias);
}

template <DType T>
void gemm_ref(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8KActivations* xs,
              int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  const size_t bb = dtype_block_bytes(T);
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t t = 0; t < n_tok; ++t) {
      double s = 0;
      for (int64_t b = 0; b < k / kKBlock; ++b) {
        const uint8_t* blk = w + r * row_bytes + b * bb;
        const int8_t* q = xs[t].q.data() + b * kKBlock;
        const int16_t* bs = xs[t].bsum.data() + b * 16;
        s += T == DType::kQ6_K ? block_q6(blk, q, bs, xs[t].d[b])
                               : block_q45(T, blk, q, bs, xs[t].d[b]);
      }
      y[t * y_stride + r] = static_cast<float>(s);
    }
}

}  // namespace

GemmKFn gemm_kquant_ref(DType weights) {
  return kquant_instance(weights, []<DType T>() -> GemmKFn { return gemm_ref<T>; });
}

GemmKFn gemm_kquant(const KernelConfig& cfg, DType weights, int64_t n_tok) {
  if (!cfg.int8 || !dtype_is_kquant(weights)) return nullptr;
#if defined(__x86_64__)
  // AVX-512 VNNI: its packed product from kAvx512KquantMinTokens tokens outside the
  // batch-invariant mode; below that (its in-place read and a small tile's packing are slower
  // than the AVX2 kernel: docs/performance.md), and in that mode, the AVX2 kernel.
  if (cfg.isa == Isa::kAvx512 && cpu_features().avx512vnni && !cfg.batch_invariant &&
      n_tok >= kAvx512KquantMinTokens)
    return gemm_kquant_avx512(weights);
  if (cfg.isa == Isa::kAvx2 || cfg.isa == Isa::kAvx512) return gemm_kquant_avx2(weights);
#endif
  (void)n_tok;
  return nullptr;
}

#if defined(__x86_64__)
GemmKFn gemm_kquant_interleaved_avx512(DType weights);  // gemm_kquant_interleaved_avx512.cc
#endif

GemmKFn gemm_kquant_interleaved(const KernelConfig& cfg, DType weights) {
#if defined(__x86_64__)
  if (cfg.int8 && cfg.isa == Isa::kAvx512 && cpu_features().avx512vnni)
    return gemm_kquant_interleaved_avx512(weights);
#endif
  (void)cfg;
  (void)weights;
  return nullptr;
}

}  // namespace rme
