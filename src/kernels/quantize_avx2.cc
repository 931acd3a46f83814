// kernels: the AVX2 activation quantizer (f32 -> Q8 blocks of 32 with scale and sum), which every
// AVX2 integer kernel (gemm_int8_avx2.cc) reads.
#include <immintrin.h>

#include <cstring>

#include "kernels/dot_q8.h"

namespace rme {

// Bit-identical to Q8Activations::quantize_ref: the block maximum is exact in any order, the
// scale and its inverse are computed in scalar like the reference, x * inv is one IEEE multiply,
// and vcvtps2dq rounds to nearest even like lrintf under the default rounding mode.
void quantize_q8_avx2(const float* x, int64_t k, int8_t* q, float* d, float* sum) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < k / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
    __m256 m =
        _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
                      _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    d[b] = amax / 127.0f;
    if (!(inv <= 3.4e38f)) {  // amax tiny: x * inf is +-inf or NaN, which the reference's
      std::memset(q + b * kQBlock, 0, kQBlock);  // (int)lrintf turns into 0 (x86: the 64-bit
      sum[b] = 0.0f;                             // "indefinite" value's low half)
      continue;
    }
    const __m256 vi = _mm256_set1_ps(inv);
    __m256i i32[4];
    for (int i = 0; i < 4; ++i) i32[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], vi));
    const __m256i s =
        _mm256_add_epi32(_mm256_add_epi32(i32[0], i32[1]), _mm256_add_epi32(i32[2], i32[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    sum[b] = static_cast<float>(_mm_cvtsi128_si32(s4));
    const __m256i p16 =
        _mm256_packs_epi16(_mm256_packs_epi32(i32[0], i32[1]), _mm256_packs_epi32(i32[2], i32[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kQBlock),
                        _mm256_permutevar8x32_epi32(p16, order));
  }
}

}  // namespace rme
