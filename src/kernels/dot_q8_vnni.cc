// kernels: AVX-512 VNNI integer dot products (vpdpbusd: unsigned 8-bit x signed 8-bit -> 32-bit).
// Weights are made unsigned (Q8_0: flip the sign bit = +128; Q4_0: nibbles are 0..15 = q + 8) and
// the offset is removed with the activation block sums.
#include <immintrin.h>

#include "kernels/dot_q8.h"
#include "tensor/half.h"

namespace rme {
namespace {

// Two blocks' scales in lanes 0-7 and 8-15.
inline __m512 pair_scale(float a, float b) {
  return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

inline __m256i q4_unpack(const uint8_t* p) {  // 16 bytes -> 32 nibbles (low half first)
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i mask = _mm_set1_epi8(0x0f);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask),
                          _mm_and_si128(bytes, mask));
}

// One Q8_0 block's weights made unsigned (sign bit flipped: w + 128) and its combined scale.
inline __m256i q8_weights(const void* w, int64_t ib, const float* d, float& scale) {
  const auto& b = static_cast<const Q8_0Block*>(w)[ib];
  scale = f16_to_f32(b.d) * d[ib];
  return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q)),
                          _mm256_set1_epi8(static_cast<char>(0x80)));
}

// Two Q8_0 blocks: sum over lanes of (w_u - 128) * x, as 16 int32 lanes (8 per block); the offset
// is removed with a second vpdpbusd, in integers.
inline __m512 q8_pair(const void* w, const int8_t* q, const float* d, int64_t ib) {
  float s0, s1;
  const __m256i w0 = q8_weights(w, ib, d, s0), w1 = q8_weights(w, ib + 1, d, s1);
  const __m512i wv = _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1);
  const __m512i xv = _mm512_loadu_si512(q + ib * kQBlock);
  const __m512i off = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i dp = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv),
                                      _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, xv));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(dp), pair_scale(s0, s1));
}

float dot_q8_0_vnni(const void* w, const int8_t* q, const float* d, const float*, int64_t k) {
  const int64_t nb = k / kQBlock;
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  int64_t ib = 0;
  for (; ib + 4 <= nb; ib += 4) {
    acc0 = _mm512_add_ps(acc0, q8_pair(w, q, d, ib));
    acc1 = _mm512_add_ps(acc1, q8_pair(w, q, d, ib + 2));
  }
  if (ib + 2 <= nb) {
    acc0 = _mm512_add_ps(acc0, q8_pair(w, q, d, ib));
    ib += 2;
  }
  float tail = 0;
  if (ib < nb) {
    float s0;
    const __m256i w0 = q8_weights(w, ib, d, s0);
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + ib * kQBlock));
    const __m256i off = _mm256_set1_epi8(static_cast<char>(0x80));
    const __m256i dp = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), w0, xv),
                                        _mm256_dpbusd_epi32(_mm256_setzero_si256(), off, xv));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(dp), _mm256_extracti128_si256(dp, 1));
    s = _mm_hadd_epi32(s, s);
    s = _mm_hadd_epi32(s, s);
    tail = s0 * static_cast<float>(_mm_cvtsi128_si32(s));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail;
}

}  // namespace

// Q4_0 with the nibble offset taken out through the activation block sums: per pair of blocks one
// vpdpbusd on the raw nibbles (0..15) and one FMA with the two blocks' scales; the offset term
// 8 * sum_b(s_b * sum_q_b) is accumulated alongside in a vector of per-pair scales.
float dot_q4_vnni(const void* w, const int8_t* q, const float* d, const float* sum, int64_t k) {
  const auto* b = static_cast<const Q4_0Block*>(w);
  const int64_t nb = k / kQBlock;
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  __m128 off0 = _mm_setzero_ps();
  int64_t ib = 0;
  for (; ib + 4 <= nb; ib += 4) {
    const __m128 dw = _mm_cvtph_ps(
        _mm_set_epi16(0, 0, 0, 0, static_cast<short>(b[ib + 3].d), static_cast<short>(b[ib + 2].d),
                      static_cast<short>(b[ib + 1].d), static_cast<short>(b[ib].d)));
    const __m128 s4 = _mm_mul_ps(dw, _mm_loadu_ps(d + ib));  // 4 blocks' d_w * d_x
    off0 = _mm_add_ps(off0, _mm_mul_ps(s4, _mm_loadu_ps(sum + ib)));
    const __m512i w01 =
        _mm512_inserti64x4(_mm512_castsi256_si512(q4_unpack(b[ib].q)), q4_unpack(b[ib + 1].q), 1);
    const __m512i w23 = _mm512_inserti64x4(_mm512_castsi256_si512(q4_unpack(b[ib + 2].q)),
                                           q4_unpack(b[ib + 3].q), 1);
    const __m512i dp01 =
        _mm512_dpbusd_epi32(_mm512_setzero_si512(), w01, _mm512_loadu_si512(q + ib * kQBlock));
    const __m512i dp23 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w23,
                                             _mm512_loadu_si512(q + (ib + 2) * kQBlock));
    // Lanes 0-7 take block ib's scale, 8-15 block ib+1's (and likewise for 2, 3).
    const __m512 sv = _mm512_castps128_ps512(s4);
    const __m512 sc01 =
        _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), sv);
    const __m512 sc23 =
        _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2), sv);
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp01), sc01, acc0);
    acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp23), sc23, acc1);
  }
  float tail = 0;
  for (; ib < nb; ++ib) {  // at most 3 blocks: the exact scalar-equivalent form
    const float s = f16_to_f32(b[ib].d) * d[ib];
    int acc = 0;
    for (int i = 0; i < kQBlock / 2; ++i) {
      acc += ((b[ib].q[i] & 0x0f) - 8) * q[ib * kQBlock + i];
      acc += ((b[ib].q[i] >> 4) - 8) * q[ib * kQBlock + i + kQBlock / 2];
    }
    tail += s * static_cast<float>(acc);
  }
  const __m128 o = _mm_hadd_ps(off0, off0);
  const float offset = 8.0f * _mm_cvtss_f32(_mm_hadd_ps(o, o));
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) - offset + tail;
}

// Activation quantization with the scalar reference's exact arithmetic (max |x|, 127 / amax,
// x * inv rounded to nearest-even by cvtps2dq as lrintf does under the default rounding mode),
// so results are bit-identical to it; 32 floats per block in two vectors.
void quantize_q8_avx512(const float* x, int64_t k, int8_t* q, float* d, float* sum) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t b = 0; b < k / kQBlock; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + b * kQBlock), x1 = _mm512_loadu_ps(x + b * kQBlock + 16);
    const float amax =
        _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, x0), _mm512_andnot_ps(sign, x1)));
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    const __m512 vi = _mm512_set1_ps(inv);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vi));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kQBlock), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kQBlock + 16), _mm512_cvtepi32_epi8(q1));
    d[b] = amax / 127.0f;
    sum[b] = static_cast<float>(_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1)));
  }
}

DotQ8Fn dot_q8_vnni(DType t) {
  return t == DType::kQ8_0 ? dot_q8_0_vnni : t == DType::kQ4_0 ? dot_q4_vnni : nullptr;
}

}  // namespace rme
