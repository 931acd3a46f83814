// kernels: Q4_K, Q5_K and Q6_K on AVX2 as one integer kernel for decode, prefill and batch
// invariance. A row's super-block is unpacked to unsigned bytes once per tile of up to 4 tokens;
// each 32-weight sub-block meets a token's 32 int8 activations in one vpmaddubsw, and a vpmaddwd
// against the sub-block's integer scale widens and scales it, so a super-block's sum stays in
// integers (exact) and meets floats once: one convert and one multiply-add for the scaled sum, one
// for the mins (Q4_K/Q5_K) or the -32 offset (Q6_K, folded into the integer sum), both through the
// activations' 16-element sums. Each token's operations are the same in any tile, so outputs are
// bit-identical whatever the batch. Row blocks stay in L2 while the token tiles pass over them.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/dot_kquant.h"
#include "tensor/kquant.h"

namespace rme {
namespace {

constexpr int kTile = 4;           // tokens per register tile
constexpr int64_t kRowBlock = 16;  // rows whose weights stay in L2 while every token tile passes

inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// vpshufb masks that broadcast 16-bit lane j (0..7) of a 128-bit half to all eight lanes.
inline __m256i lane_mask(int j) {
  const int lo = 2 * j, hi = 2 * j + 1;
  return _mm256_set1_epi16(static_cast<short>(lo | hi << 8));
}
// Low half broadcasts lane j, high half lane j + 1 (Q6_K: a 32-weight group's two 16-scales).
inline __m256i pair_mask(int j) {
  return _mm256_setr_m128i(_mm_set1_epi16(static_cast<short>((2 * j) | (2 * j + 1) << 8)),
                           _mm_set1_epi16(static_cast<short>((2 * j + 2) | (2 * j + 3) << 8)));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int NT>
struct Tokens {
  const int8_t* q[NT];
  const float* d[NT];
  const int16_t* bs[NT];
  explicit Tokens(const Q8KActivations* xs) {
    for (int t = 0; t < NT; ++t)
      q[t] = xs[t].q.data(), d[t] = xs[t].d.data(), bs[t] = xs[t].bsum.data();
  }
};

// Scales and mins of a Q4_K/Q5_K super-block as eight int16 lanes each.
inline void scales_mins(const uint8_t* p, __m128i* sc, __m128i* mn) {
  uint64_t s, m;
  kquant_scales_mins8(p, &s, &m);
  *sc = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(s)));
  *mn = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(m)));
}

// out[t] = row . token t for NT tokens (Q4_K when !kFive, Q5_K when kFive).
template <bool kFive, int NT>
void row_q45(const uint8_t* row, int64_t nsb, const Tokens<NT>& x, float* out) {
  constexpr size_t kBytes = kFive ? kQ5KBytes : kQ4KBytes;
  const __m256i nib = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nsb; ++b) {
    const uint8_t* blk = row + b * kBytes;
    const uint8_t* qs = blk + (kFive ? 48 : 16);
    __m128i sc8, mn8;
    scales_mins(blk + 4, &sc8, &mn8);
    const __m256i sc = _mm256_broadcastsi128_si256(sc8);
    // Each min twice, against the two 16-sums of its sub-block.
    const __m256i mn =
        _mm256_setr_m128i(_mm_unpacklo_epi16(mn8, mn8), _mm_unpackhi_epi16(mn8, mn8));
    __m256i qh = kFive ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16))
                       : _mm256_setzero_si256();
    __m256i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {  // 64 weights: sub-blocks 2c (low nibbles) and 2c + 1 (high)
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
      __m256i lo = _mm256_and_si256(raw, nib),
              hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib);
      if constexpr (kFive) {  // fifth bits: bit 2c of qh for lo, 2c + 1 for hi (qh shifted as c
                              // goes)
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4));
        qh = _mm256_srli_epi16(qh, 2);
      }
      const __m256i s_lo = _mm256_shuffle_epi8(sc, lane_mask(2 * c));
      const __m256i s_hi = _mm256_shuffle_epi8(sc, lane_mask(2 * c + 1));
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) {
        const int8_t* xq = x.q[t] + b * kKBlock + 64 * c;
        const __m256i x_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
        const __m256i x_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32));
        const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, x_lo), s_lo),
                                           _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x_hi), s_hi));
        isum[t] = _mm256_add_epi32(isum[t], p);
      }
    }
    const float d = f16_at(blk), dmin = f16_at(blk + 2);
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bs[t] + b * 16));
      const __m256i imin = _mm256_madd_epi16(bs, mn);
      const float dx = x.d[t][b];
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(dx * d), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imin), _mm256_set1_ps(dx * dmin), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]);
}

// out[t] = row . token t for NT tokens, Q6_K.
template <int NT>
void row_q6(const uint8_t* row, int64_t nsb, const Tokens<NT>& x, float* out) {
  const __m256i nib = _mm256_set1_epi8(0x0f), top = _mm256_set1_epi8(0x30);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nsb; ++b) {
    const uint8_t* blk = row + b * kQ6KBytes;
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);  // 16 scales, one per 16 weights
    __m256i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {  // 128 weights: groups 4h .. 4h + 3 of 32
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h));
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32));
      const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
      const __m256i q[4] = {_mm256_or_si256(_mm256_and_si256(a, nib),
                                            _mm256_and_si256(_mm256_slli_epi16(hb, 4), top)),
                            _mm256_or_si256(_mm256_and_si256(c, nib),
                                            _mm256_and_si256(_mm256_slli_epi16(hb, 2), top)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), nib),
                                            _mm256_and_si256(hb, top)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), nib),
                                            _mm256_and_si256(_mm256_srli_epi16(hb, 2), top))};
      // This half's 8 scales in both 128-bit halves; group g's pair picked per half.
      const __m256i sh = _mm256_broadcastsi128_si256(h == 0 ? _mm256_castsi256_si128(sc16)
                                                            : _mm256_extracti128_si256(sc16, 1));
#pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) {
        const __m256i s = _mm256_shuffle_epi8(sh, pair_mask(2 * g));
#pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) {
          const __m256i xv = _mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(x.q[t] + b * kKBlock + 128 * h + 32 * g));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[g], xv), s));
        }
      }
    }
    const float d = f16_at(blk + 208);
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bs[t] + b * 16));
      const __m256i bias = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);  // 32 * sum sc * bs
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(isum[t], bias)),
                               _mm256_set1_ps(x.d[t][b] * d), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]);
}

template <DType T, int NT>
void row_tile(const uint8_t* row, int64_t nsb, const Q8KActivations* xs, float* out) {
  const Tokens<NT> x(xs);
  if constexpr (T == DType::kQ6_K)
    row_q6<NT>(row, nsb, x, out);
  else
    row_q45<T == DType::kQ5_K, NT>(row, nsb, x, out);
}

template <DType T>
void gemm(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8KActivations* xs,
          int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  const int64_t nsb = k / kKBlock;
  float out[kTile];
  for (int64_t r0 = 0; r0 < n_rows; r0 += kRowBlock) {
    const int64_t r1 = std::min(n_rows, r0 + kRowBlock);
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTile) {
      const int nt = static_cast<int>(std::min<int64_t>(kTile, n_tok - t0));
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = w + r * row_bytes;
        switch (nt) {
          case 4:
            row_tile<T, 4>(row, nsb, xs + t0, out);
            break;
          case 3:
            row_tile<T, 3>(row, nsb, xs + t0, out);
            break;
          case 2:
            row_tile<T, 2>(row, nsb, xs + t0, out);
            break;
          default:
            row_tile<T, 1>(row, nsb, xs + t0, out);
        }
        for (int t = 0; t < nt; ++t) y[(t0 + t) * y_stride + r] = out[t];
      }
    }
  }
}

}  // namespace

float quantize_q8k_block_avx2(const float* x, int8_t* q, int16_t* bsum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax = _mm256_setzero_ps();
  for (int i = 0; i < kKBlock; i += 8)
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float a = _mm_cvtss_f32(m);
  // As quantize_ref: the same scalar scale, x * id rounded to nearest even, clamped to +-127.
  const float id = a > 0 ? 127.0f / a : 0.0f;
  const __m256 vid = _mm256_set1_ps(id);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  for (int i = 0; i < kKBlock; i += 32) {
    __m256i v[4];
    for (int j = 0; j < 4; ++j)
      v[j] = _mm256_min_epi32(hi, _mm256_max_epi32(lo, _mm256_cvtps_epi32(_mm256_mul_ps(
                                                           _mm256_loadu_ps(x + i + 8 * j), vid))));
    // Pack 32 int32 to int8 in order: packs interleave 128-bit lanes, the permute undoes it.
    const __m256i p16a = _mm256_packs_epi32(v[0], v[1]), p16b = _mm256_packs_epi32(v[2], v[3]);
    const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b),
                                                   _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), p8);
    // Two 16-sums: bytes widened to int16, pairs summed (madd with ones), then 8 lanes per half.
    const __m256i s16 =
        _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(p8)), _mm256_set1_epi16(1));
    const __m256i t16 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(p8, 1)),
                                          _mm256_set1_epi16(1));
    auto sum8 = [](__m256i v) {  // the 8 int32 lanes' sum
      __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
      return _mm_cvtsi128_si32(s);
    };
    bsum[i / 16] = static_cast<int16_t>(sum8(s16));
    bsum[i / 16 + 1] = static_cast<int16_t>(sum8(t16));
  }
  return a / 127.0f;
}

GemmKFn gemm_kquant_avx2(DType weights) {
  return kquant_instance(weights, []<DType T>() -> GemmKFn { return gemm<T>; });
}

}  // namespace rme
