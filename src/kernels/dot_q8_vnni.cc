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

// Q4_0 with the nibble offset taken out through the activation block sums. Four blocks per
// vector: their 16-byte nibble arrays fill one zmm (one 128-bit lane per block), so one AND and
// one shift+AND give all low and all high nibbles; the activations are regrouped to match (two
// qword permutes), two vpdpbusd leave each block's partial sums in its own lane, and one FMA
// applies the four scales. The offset term 8 * sum_b(s_b * sum_q_b) accumulates alongside.
namespace {
inline __m128 q4_scales(const Q4_0Block* b, const float* d) {  // 4 blocks' d_w * d_x
  const __m128i h =
      _mm_set_epi16(0, 0, 0, 0, static_cast<short>(b[3].d), static_cast<short>(b[2].d),
                    static_cast<short>(b[1].d), static_cast<short>(b[0].d));
  return _mm_mul_ps(_mm_cvtph_ps(h), _mm_loadu_ps(d));
}

// Sum over 4 blocks of (nibbles . q) as 16 int32 lanes, lane group L = block L.
inline __m512i q4_quad(const Q4_0Block* b, const int8_t* q) {
  __m512i raw = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].q)));
  raw = _mm512_inserti32x4(raw, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].q)), 1);
  raw = _mm512_inserti32x4(raw, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[2].q)), 2);
  raw = _mm512_inserti32x4(raw, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[3].q)), 3);
  const __m512i mask = _mm512_set1_epi8(0x0f);
  const __m512i lo = _mm512_and_si512(raw, mask);
  const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask);
  const __m512i xa = _mm512_loadu_si512(q), xb = _mm512_loadu_si512(q + 64);
  // Block L's first 16 activations are qwords 4L, 4L+1 of (xa, xb); its last 16, 4L+2, 4L+3.
  const __m512i xlo = _mm512_permutex2var_epi64(xa, _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0), xb);
  const __m512i xhi =
      _mm512_permutex2var_epi64(xa, _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2), xb);
  return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi);
}

inline __m512 lane_scales(__m128 s4) {  // s4[L] broadcast over 128-bit lane L
  return _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
                               _mm512_castps128_ps512(s4));
}
}  // namespace

float dot_q4_vnni(const void* w, const int8_t* q, const float* d, const float* sum, int64_t k) {
  const auto* b = static_cast<const Q4_0Block*>(w);
  const int64_t nb = k / kQBlock;
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  __m128 off = _mm_setzero_ps();
  int64_t ib = 0;
  for (; ib + 8 <= nb; ib += 8) {
    const __m128 s0 = q4_scales(b + ib, d + ib), s1 = q4_scales(b + ib + 4, d + ib + 4);
    off = _mm_fmadd_ps(s0, _mm_loadu_ps(sum + ib), off);
    off = _mm_fmadd_ps(s1, _mm_loadu_ps(sum + ib + 4), off);
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q4_quad(b + ib, q + ib * kQBlock)), lane_scales(s0),
                           acc0);
    acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q4_quad(b + ib + 4, q + (ib + 4) * kQBlock)),
                           lane_scales(s1), acc1);
  }
  if (ib + 4 <= nb) {
    const __m128 s0 = q4_scales(b + ib, d + ib);
    off = _mm_fmadd_ps(s0, _mm_loadu_ps(sum + ib), off);
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q4_quad(b + ib, q + ib * kQBlock)), lane_scales(s0),
                           acc0);
    ib += 4;
  }
  float tail = 0;
  for (; ib < nb; ++ib) {  // at most 3 blocks: the exact scalar-equivalent form
    const float s = _cvtsh_ss(b[ib].d) * d[ib];
    int acc = 0;
    for (int i = 0; i < kQBlock / 2; ++i) {
      acc += ((b[ib].q[i] & 0x0f) - 8) * q[ib * kQBlock + i];
      acc += ((b[ib].q[i] >> 4) - 8) * q[ib * kQBlock + i + kQBlock / 2];
    }
    tail += s * static_cast<float>(acc);
  }
  const __m128 o = _mm_hadd_ps(off, off);
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
