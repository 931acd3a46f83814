// kernels: AArch64 NEON row kernels — the float ones from float_dot_impl.h (the AVX2 source), the
// quantized ones decoding each 32-element block to f32 first (int8 activations: not yet on NEON).
#include "kernels/float_dot_impl.h"
#include "kernels/matmul.h"
#include "kernels/simd_neon.h"

namespace rme {
namespace {

using S = simd::Neon;

// One block's 32 weights as floats (before its scale), element order.
inline void decode(const Q8_0Block& b, float* out) {
  for (int i = 0; i < kQBlock; ++i) out[i] = b.q[i];
}
inline void decode(const Q4_0Block& b, float* out) {
  for (int i = 0; i < kQBlock / 2; ++i) {
    out[i] = static_cast<float>((b.q[i] & 0x0f) - 8);
    out[i + kQBlock / 2] = static_cast<float>((b.q[i] >> 4) - 8);
  }
}

// sum over blocks of d_b * (w_b . x_b): eight NEON products per block into two accumulators.
template <typename Block>
float dot_quant(const void* w, const float* x, int64_t k) {
  const auto* b = static_cast<const Block*>(w);
  S::V acc0 = S::zero(), acc1 = S::zero();
  float wf[kQBlock];
  for (int64_t ib = 0; ib < k / kQBlock; ++ib) {
    decode(b[ib], wf);
    const float* xb = x + ib * kQBlock;
    S::V s0 = S::mul(S::load(wf), S::load(xb)), s1 = S::mul(S::load(wf + 4), S::load(xb + 4));
    for (int i = 8; i < kQBlock; i += 8) {
      s0 = S::fmadd(S::load(wf + i), S::load(xb + i), s0);
      s1 = S::fmadd(S::load(wf + i + 4), S::load(xb + i + 4), s1);
    }
    const S::V d = S::set1(S::f16_to_f32(b[ib].d));
    if (ib & 1) {
      acc1 = S::fmadd(S::add(s0, s1), d, acc1);
    } else {
      acc0 = S::fmadd(S::add(s0, s1), d, acc0);
    }
  }
  return S::reduce_add(S::add(acc0, acc1));
}

}  // namespace

FloatRowsFn float_rows_neon(DType t) { return simd::float_rows_for<S>(t); }

const RowKernels& row_kernels_neon() {
  using simd::BF16Row, simd::dot_row, simd::F16Row, simd::F32Row, simd::row_to_f32;
  const RowKernels& ref = row_kernels_ref();  // quantized rows decode with the reference
  static const RowKernels k = {
      {dot_row<S, F32Row<S>, float>, dot_row<S, F16Row<S>, uint16_t>,
       dot_row<S, BF16Row<S>, uint16_t>, dot_quant<Q8_0Block>, dot_quant<Q4_0Block>,
       ref.dot[static_cast<int>(DType::kQ4_K)], ref.dot[static_cast<int>(DType::kQ5_K)],
       ref.dot[static_cast<int>(DType::kQ6_K)]},
      {row_to_f32<S, F32Row<S>, float>, row_to_f32<S, F16Row<S>, uint16_t>,
       row_to_f32<S, BF16Row<S>, uint16_t>, ref.to_f32[static_cast<int>(DType::kQ8_0)],
       ref.to_f32[static_cast<int>(DType::kQ4_0)], ref.to_f32[static_cast<int>(DType::kQ4_K)],
       ref.to_f32[static_cast<int>(DType::kQ5_K)], ref.to_f32[static_cast<int>(DType::kQ6_K)]},
  };
  return k;
}

}  // namespace rme
