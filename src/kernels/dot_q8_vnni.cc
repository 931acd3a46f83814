// kernels: AVX-512 VNNI integer dot products (vpdpbusd: unsigned 8-bit x signed 8-bit -> 32-bit).
// Weights are made unsigned (Q8_0: flip the sign bit = +128; Q4_0: nibbles are 0..15 = q + 8) and
// the offset is removed with the activation block sums.
#include <immintrin.h>

#include <vector>

#include "kernels/cpu.h"
#include "kernels/dot_q8.h"
#include "kernels/q4_dot_avx512.h"

namespace rme {
namespace {

// 4 blocks' d_w * d_x (F16C for the weight scales).
template <typename Block>
inline __m128 scales4(const Block* b, const float* d) {
  const __m128i h =
      _mm_set_epi16(0, 0, 0, 0, static_cast<short>(b[3].d), static_cast<short>(b[2].d),
                    static_cast<short>(b[1].d), static_cast<short>(b[0].d));
  return _mm_mul_ps(_mm_cvtph_ps(h), _mm_loadu_ps(d));
}

// Two Q8_0 blocks' weights made unsigned (sign bit flipped: w + 128), block 0 in the low half.
inline __m512i q8_pair_unsigned(const Q8_0Block* b) {
  const __m512i v = _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].q))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].q)), 1);
  return _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
}

// Q8_0: per pair of blocks one vpdpbusd on the unsigned weights and one FMA with the pair's
// scales (lanes 0-7 block 0, 8-15 block 1); the +128 offset comes off once at the end through the
// activation block sums, 128 * sum_b(s_b * sum_q_b), accumulated alongside.
float dot_q8_0_vnni(const void* w, const int8_t* q, const float* d, const float* sum, int64_t k) {
  const auto* b = static_cast<const Q8_0Block*>(w);
  const int64_t nb = k / kQBlock;
  const __m512i lo_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i hi_idx = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  __m128 off = _mm_setzero_ps();
  int64_t ib = 0;
  for (; ib + 4 <= nb; ib += 4) {
    const __m128 s4 = scales4(b + ib, d + ib);
    off = _mm_fmadd_ps(s4, _mm_loadu_ps(sum + ib), off);
    const __m512i dp01 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q8_pair_unsigned(b + ib),
                                             _mm512_loadu_si512(q + ib * kQBlock));
    const __m512i dp23 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q8_pair_unsigned(b + ib + 2),
                                             _mm512_loadu_si512(q + (ib + 2) * kQBlock));
    const __m512 sv = _mm512_castps128_ps512(s4);
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp01), _mm512_permutexvar_ps(lo_idx, sv), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp23), _mm512_permutexvar_ps(hi_idx, sv), acc1);
  }
  float tail = 0;
  for (; ib < nb; ++ib) {  // at most 3 blocks: the exact scalar-equivalent form
    int acc = 0;
    for (int i = 0; i < kQBlock; ++i) acc += b[ib].q[i] * q[ib * kQBlock + i];
    tail += _cvtsh_ss(b[ib].d) * d[ib] * static_cast<float>(acc);
  }
  const __m128 o = _mm_hadd_ps(off, off);
  const float offset = 128.0f * _mm_cvtss_f32(_mm_hadd_ps(o, o));
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) - offset + tail;
}

}  // namespace

// Q4_0: four blocks' 16-byte nibble arrays gathered into one vector with three inserts, their
// scales with F16C; the loop itself is q4_dot (q4_dot_avx512.h).
float dot_q4_vnni(const void* w, const int8_t* q, const float* d, const float* sum, int64_t k) {
  const auto* b = static_cast<const Q4_0Block*>(w);
  return q4_dot(b, q, d, sum, k / kQBlock, [&](int64_t ib) {
    const auto nibbles = [&](int l) {
      return _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[ib + l].q));
    };
    __m512i raw = _mm512_castsi128_si512(nibbles(0));
    raw = _mm512_inserti32x4(raw, nibbles(1), 1);
    raw = _mm512_inserti32x4(raw, nibbles(2), 2);
    raw = _mm512_inserti32x4(raw, nibbles(3), 3);
    return Q4Quad{q4_nibble_dot(raw, q + ib * kQBlock), scales4(b + ib, d + ib)};
  });
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

float dot_q4_vbmi(const void* w, const int8_t* q, const float* d, const float* sum,
                  int64_t k);  // dot_q4_vbmi.cc

DotQ8Fn dot_q8_vnni(DType t) {
  static const bool vbmi = cpu_features().avx512vbmi;
  if (t == DType::kQ4_0) return vbmi ? dot_q4_vbmi : dot_q4_vnni;
  return t == DType::kQ8_0 ? dot_q8_0_vnni : nullptr;
}

std::vector<DotQ8Fn> dot_q8_vnni_all(DType t) {
  std::vector<DotQ8Fn> all;
  if (t == DType::kQ8_0) all.push_back(dot_q8_0_vnni);
  if (t == DType::kQ4_0) all.push_back(dot_q4_vnni);
  if (t == DType::kQ4_0 && cpu_features().avx512vbmi) all.push_back(dot_q4_vbmi);
  return all;
}

}  // namespace rme
