// kernels: AVX2 + FMA + F16C row kernels (this file is compiled with -mavx2 -mfma -mf16c and is
// only called when the CPU has them).
#include <immintrin.h>

#include "kernels/float_dot_impl.h"
#include "kernels/matmul.h"
#include "kernels/simd_avx2.h"

namespace rme {
namespace {

using S = simd::Avx2;

// 8 signed bytes -> 8 floats.
inline __m256 i8x8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }

// Q8_0 / Q4_0 blocks decoded into 4 x 8 floats (before scaling by d).
inline void q8_0_decode(const Q8_0Block& b, __m256 v[4]) {
  __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q));
  __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q + 16));
  v[0] = i8x8_to_ps(lo);
  v[1] = i8x8_to_ps(_mm_srli_si128(lo, 8));
  v[2] = i8x8_to_ps(hi);
  v[3] = i8x8_to_ps(_mm_srli_si128(hi, 8));
}
inline void q4_0_decode(const Q4_0Block& b, __m256 v[4]) {
  __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q));
  __m128i mask = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
  __m128i lo = _mm_sub_epi8(_mm_and_si128(bytes, mask), eight);                     // elems 0..15
  __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), eight);  // 16..31
  v[0] = i8x8_to_ps(lo);
  v[1] = i8x8_to_ps(_mm_srli_si128(lo, 8));
  v[2] = i8x8_to_ps(hi);
  v[3] = i8x8_to_ps(_mm_srli_si128(hi, 8));
}

template <typename Block, void (*Decode)(const Block&, __m256*)>
float dot_quant(const void* w, const float* x, int64_t k) {
  const Block* b = static_cast<const Block*>(w);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  for (int64_t ib = 0; ib < k / kQBlock; ++ib) {
    __m256 v[4];
    Decode(b[ib], v);
    const float* xb = x + ib * kQBlock;
    __m256 s0 = _mm256_mul_ps(v[0], _mm256_loadu_ps(xb));
    __m256 s1 = _mm256_mul_ps(v[1], _mm256_loadu_ps(xb + 8));
    s0 = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(xb + 16), s0);
    s1 = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(xb + 24), s1);
    __m256 d = _mm256_set1_ps(S::f16_to_f32(b[ib].d));
    if (ib & 1) {
      acc1 = _mm256_fmadd_ps(_mm256_add_ps(s0, s1), d, acc1);
    } else {
      acc0 = _mm256_fmadd_ps(_mm256_add_ps(s0, s1), d, acc0);
    }
  }
  return S::reduce_add(_mm256_add_ps(acc0, acc1));
}

template <typename Block, void (*Decode)(const Block&, __m256*)>
void to_f32_quant(const void* w, float* out, int64_t k) {
  const Block* b = static_cast<const Block*>(w);
  for (int64_t ib = 0; ib < k / kQBlock; ++ib) {
    __m256 v[4];
    Decode(b[ib], v);
    __m256 d = _mm256_set1_ps(S::f16_to_f32(b[ib].d));
    for (int j = 0; j < 4; ++j)
      _mm256_storeu_ps(out + ib * kQBlock + 8 * j, _mm256_mul_ps(v[j], d));
  }
}

}  // namespace

FloatRowsFn float_rows_avx2(DType t) { return simd::float_rows_for<simd::Avx2>(t); }

const RowKernels& row_kernels_avx2() {
  using simd::BF16Row, simd::dot_row, simd::F16Row, simd::F32Row, simd::row_to_f32;
  const RowKernels& ref = row_kernels_ref();
  static const RowKernels k = {
      {dot_row<S, F32Row<S>, float>, dot_row<S, F16Row<S>, uint16_t>,
       dot_row<S, BF16Row<S>, uint16_t>, dot_quant<Q8_0Block, q8_0_decode>,
       dot_quant<Q4_0Block, q4_0_decode>, ref.dot[static_cast<int>(DType::kQ4_K)],
       ref.dot[static_cast<int>(DType::kQ5_K)], ref.dot[static_cast<int>(DType::kQ6_K)]},
      {row_to_f32<S, F32Row<S>, float>, row_to_f32<S, F16Row<S>, uint16_t>,
       row_to_f32<S, BF16Row<S>, uint16_t>, to_f32_quant<Q8_0Block, q8_0_decode>,
       to_f32_quant<Q4_0Block, q4_0_decode>, ref.to_f32[static_cast<int>(DType::kQ4_K)],
       ref.to_f32[static_cast<int>(DType::kQ5_K)], ref.to_f32[static_cast<int>(DType::kQ6_K)]},
  };
  return k;
}

}  // namespace rme
