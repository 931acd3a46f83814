// kernels: AVX-512 VNNI integer dot products (vpdpbusd: unsigned 8-bit x signed 8-bit -> 32-bit).
// Weights are made unsigned (Q8_0: flip the sign bit = +128; Q4_0: nibbles are 0..15 = q + 8) and
// the offset is removed with the activation block sums.
#include <immintrin.h>

#include <vector>

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

// Two blocks of row weights as 64 unsigned bytes (Q4_0: nibbles 0..15; Q8_0: sign-flipped).
template <bool kQ4>
inline __m512i pair_weights(const uint8_t* row, int64_t ib) {
  if constexpr (kQ4) {
    const auto* b = reinterpret_cast<const Q4_0Block*>(row);
    return _mm512_inserti64x4(_mm512_castsi256_si512(q4_unpack(b[ib].q)), q4_unpack(b[ib + 1].q),
                              1);
  } else {
    const auto* b = reinterpret_cast<const Q8_0Block*>(row);
    const __m512i v = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[ib].q))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[ib + 1].q)), 1);
    return _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
  }
}

template <bool kQ4>
inline float block_scale(const uint8_t* row, int64_t ib) {  // F16C, not the portable helper
  if constexpr (kQ4) return _cvtsh_ss(reinterpret_cast<const Q4_0Block*>(row)[ib].d);
  return _cvtsh_ss(reinterpret_cast<const Q8_0Block*>(row)[ib].d);
}

inline float dot_scales(const float* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  float s = _mm512_reduce_add_ps(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// 4 rows x 4 tokens per tile: per pair of blocks, each weight pair is unpacked once for 4 tokens
// and each token's 64 bytes loaded once for 4 rows; one vpdpbusd, one convert, one multiply and
// one FMA per (row, token). Scales are converted once per row / token; the unsigned-weight offset
// comes off at the end through the token block sums. An odd last block and rows/tokens outside
// full tiles use the exact forms.
template <bool kQ4>
void gemm_vnni(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8Activations* xs,
               int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  constexpr float kOffset = kQ4 ? 8.0f : 128.0f;
  const int64_t nb = k / kQBlock, np = nb / 2, ne = 2 * np;  // blocks done in pairs
  const DotQ8Fn exact = dot_q8_ref(kQ4 ? DType::kQ4_0 : DType::kQ8_0);
  const DotQ8Fn gemv = kQ4 ? dot_q4_vnni : dot_q8_0_vnni;
  thread_local std::vector<float> cx, dw;  // token: d * sum per block; row group: d_w per block
  if (static_cast<int64_t>(cx.size()) < n_tok * nb) cx.resize(n_tok * nb);
  if (static_cast<int64_t>(dw.size()) < 4 * nb) dw.resize(4 * nb);
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t ib = 0; ib < nb; ++ib) cx[t * nb + ib] = xs[t].d[ib] * xs[t].sum[ib];
  int64_t r0 = 0;
  for (; r0 + 4 <= n_rows; r0 += 4) {
    const uint8_t* rows[4];
    for (int r = 0; r < 4; ++r) {
      rows[r] = w + (r0 + r) * row_bytes;
      for (int64_t ib = 0; ib < nb; ++ib) dw[r * nb + ib] = block_scale<kQ4>(rows[r], ib);
    }
    int64_t t0 = 0;
    for (; t0 + 4 <= n_tok; t0 += 4) {
      __m512 acc[4][4];
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; ++r)
          _Pragma("GCC unroll 4") for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
      for (int64_t p = 0; p < np; ++p) {
        const int64_t ib = 2 * p;
        __m512i xv[4];
        __m512 xsc[4];
        _Pragma("GCC unroll 4") for (int c = 0; c < 4; ++c) {
          const Q8Activations& x = xs[t0 + c];
          xv[c] = _mm512_loadu_si512(x.q.data() + ib * kQBlock);
          xsc[c] = pair_scale(x.d[ib], x.d[ib + 1]);
        }
        _Pragma("GCC unroll 4") for (int r = 0; r < 4; ++r) {
          const __m512i wv = pair_weights<kQ4>(rows[r], ib);
          const __m512 ws = pair_scale(dw[r * nb + ib], dw[r * nb + ib + 1]);
          _Pragma("GCC unroll 4") for (int c = 0; c < 4; ++c) {
            const __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv[c]);
            acc[r][c] =
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), _mm512_mul_ps(ws, xsc[c]), acc[r][c]);
          }
        }
      }
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) {
          const Q8Activations& x = xs[t0 + c];
          float v = _mm512_reduce_add_ps(acc[r][c]) -
                    kOffset * dot_scales(&dw[r * nb], &cx[(t0 + c) * nb], ne);
          if (nb > ne)  // the odd last block, exactly
            v += exact(rows[r] + ne * (row_bytes / nb), x.q.data() + ne * kQBlock, x.d.data() + ne,
                       x.sum.data() + ne, kQBlock);
          y[(t0 + c) * y_stride + r0 + r] = v;
        }
    }
    for (; t0 < n_tok; ++t0)
      for (int r = 0; r < 4; ++r) {
        const Q8Activations& x = xs[t0];
        y[t0 * y_stride + r0 + r] = gemv(rows[r], x.q.data(), x.d.data(), x.sum.data(), k);
      }
  }
  for (; r0 < n_rows; ++r0)
    for (int64_t t = 0; t < n_tok; ++t) {
      const Q8Activations& x = xs[t];
      y[t * y_stride + r0] = gemv(w + r0 * row_bytes, x.q.data(), x.d.data(), x.sum.data(), k);
    }
}

GemmQ8Fn gemm_q8_vnni(DType t) {
  return t == DType::kQ8_0 ? gemm_vnni<false> : t == DType::kQ4_0 ? gemm_vnni<true> : nullptr;
}

DotQ8Fn dot_q8_vnni(DType t) {
  return t == DType::kQ8_0 ? dot_q8_0_vnni : t == DType::kQ4_0 ? dot_q4_vnni : nullptr;
}

}  // namespace rme
