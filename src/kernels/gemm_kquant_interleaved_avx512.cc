// kernels: Q4_K, Q5_K and Q6_K matrices in the 16-row interleaved form (interleave.h) on AVX-512
// VNNI — one kernel for decode, prefill and the batch-invariant mode. The arithmetic is
// gemm_kquant_avx512.cc's (the same exact integers per super-block, the same float operations),
// but a group's quants, scales and d come straight from memory in lane order instead of being
// unpacked and transposed per call: decode streams the matrix once, at the memory's pace.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/dot_kquant.h"
#include "kernels/kquant_avx512_impl.h"
#include "kernels/tile_dispatch.h"
#include "tensor/kquant.h"

namespace rme {
namespace {

using kq512::bcast_word;
using kq512::finish;
using kq512::kGroup;
using kq512::kTile;
using kq512::kWords;
using kq512::token_block;
using kq512::TokenBlock;

inline __m512i load(const uint8_t* p) { return _mm512_loadu_si512(p); }
inline __m512i byte_of(__m512i v, int i) {  // byte i of each lane, zero-extended
  return _mm512_and_si512(_mm512_srli_epi32(v, 8 * i), _mm512_set1_epi32(0xff));
}
inline __m512i sbyte_of(__m512i v, int i) {  // byte i of each lane, sign-extended
  return _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * i), 24);
}

// One group's super-block (16 rows x 256 weights) read in place: the 16 rows' d (and dmin), the
// integer scale of sub-block j per lane, the int16 pairs against the activations' 16-element
// sums (Q4_K/Q5_K: (min_i, min_i); Q6_K: (scale 2i, scale 2i + 1)), and the kPer quant words of
// sub-block j (lane r: row r's unsigned quants of 4 weights) — the values pack_group stores.
template <DType T>
struct IK;

// Q4_K/Q5_K's 12 scale bytes as 3 lane words A, B, C: sub-block j < 4 takes scale A.j & 63 and
// min B.j & 63; j >= 4 takes (C.(j-4) & 15) | (A.(j-4) >> 6) << 4 and (C.(j-4) >> 4) |
// (B.(j-4) >> 6) << 4 (ggml's get_scale_min_k4).
struct Scales12 {
  static __m512i scale(const uint8_t* s, int j) {
    const __m512i a = load(s), c = load(s + 128);
    if (j < 4) return _mm512_and_si512(byte_of(a, j), _mm512_set1_epi32(63));
    return _mm512_or_si512(_mm512_and_si512(byte_of(c, j - 4), _mm512_set1_epi32(15)),
                           _mm512_slli_epi32(_mm512_srli_epi32(byte_of(a, j - 4), 6), 4));
  }
  static __m512i min(const uint8_t* s, int j) {
    const __m512i b = load(s + 64), c = load(s + 128);
    if (j < 4) return _mm512_and_si512(byte_of(b, j), _mm512_set1_epi32(63));
    return _mm512_or_si512(_mm512_srli_epi32(byte_of(c, j - 4), 4),
                           _mm512_slli_epi32(_mm512_srli_epi32(byte_of(b, j - 4), 6), 4));
  }
  static __m512i pair(const uint8_t* s, int i) {
    const __m512i m = min(s, i);
    return _mm512_or_si512(m, _mm512_slli_epi32(m, 16));
  }
  static void ds(const uint8_t* p, __m512* d, __m512* dmin) {
    const __m512i raw = load(p);
    *d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
    *dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(raw, 16)));
  }
};

template <typename I, int NT>
[[gnu::always_inline]] inline void subblock_sums(const uint8_t* p, const TokenBlock* x,
                                                 __m512i* isum);

template <>
struct IK<DType::kQ4_K> : Scales12 {  // [d dmin][scales x 3][qs x 32]
  static constexpr int64_t kBytes = kGroup * kQ4KBytes;
  static constexpr int kScales = 8;
  static void all_words(const uint8_t* p, __m512i* out) {
    for (int j = 0; j < kScales; ++j) words(p, j, out + 8 * j);
  }
  template <int NT>
  [[gnu::always_inline]] static void sums(const uint8_t* p, const TokenBlock* x, __m512i* isum) {
    subblock_sums<IK, NT>(p, x, isum);
  }
  static const uint8_t* scales(const uint8_t* p) { return p + 64; }
  // Sub-block j: chunk j / 2's quant bytes, low nibbles for even j, high for odd.
  static void words(const uint8_t* p, int j, __m512i w[8]) {
    const uint8_t* q = p + 256 + (j / 2) * 8 * 64;
    const __m512i nib = _mm512_set1_epi8(0x0f);
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) {
      const __m512i v = load(q + 64 * t);
      w[t] = _mm512_and_si512(j % 2 ? _mm512_srli_epi16(v, 4) : v, nib);
    }
  }
};

template <>
struct IK<DType::kQ5_K> : Scales12 {  // [d dmin][scales x 3][qh x 8][qs x 32]
  static constexpr int64_t kBytes = kGroup * kQ5KBytes;
  static constexpr int kScales = 8;
  static void all_words(const uint8_t* p, __m512i* out) {
    for (int j = 0; j < kScales; ++j) words(p, j, out + 8 * j);
  }
  template <int NT>
  [[gnu::always_inline]] static void sums(const uint8_t* p, const TokenBlock* x, __m512i* isum) {
    subblock_sums<IK, NT>(p, x, isum);
  }
  static const uint8_t* scales(const uint8_t* p) { return p + 64; }
  // As Q4_K, plus the fifth bit: bit j of the weight's qh byte (chunk c = j / 2 has bits 2c and
  // 2c + 1), moved to bit 4.
  static void words(const uint8_t* p, int j, __m512i w[8]) {
    const uint8_t* q = p + 768 + (j / 2) * 8 * 64;
    const __m512i nib = _mm512_set1_epi8(0x0f), bit4 = _mm512_set1_epi8(0x10);
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) {
      const __m512i v = load(q + 64 * t);
      const __m512i h = _mm512_srli_epi16(load(p + 256 + 64 * t), 2 * (j / 2));
      const __m512i lo = _mm512_and_si512(j % 2 ? _mm512_srli_epi16(v, 4) : v, nib);
      const __m512i hi =
          _mm512_and_si512(j % 2 ? _mm512_slli_epi16(h, 3) : _mm512_slli_epi16(h, 4), bit4);
      w[t] = _mm512_or_si512(lo, hi);
    }
  }
};

template <>
struct IK<DType::kQ6_K> {  // [ql x 32][qh x 16][scales x 4][d: 16 f16]
  static constexpr int64_t kBytes = kGroup * kQ6KBytes;
  static constexpr int kScales = 16;
  static __m512i scale(const uint8_t* s, int g) { return sbyte_of(load(s + 64 * (g / 4)), g % 4); }
  static __m512i pair(const uint8_t* s, int i) {
    const __m512i v = load(s + 64 * (i / 2));
    const int b = 2 * (i % 2);
    return _mm512_or_si512(_mm512_and_si512(sbyte_of(v, b), _mm512_set1_epi32(0xffff)),
                           _mm512_slli_epi32(sbyte_of(v, b + 1), 16));
  }
  static const uint8_t* scales(const uint8_t* p) { return p + 3072; }
  static void ds(const uint8_t* p, __m512* d, __m512*) {
    *d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 3328)));
  }
  // Word j of the four quarters q of half h (weights 128h + 32q + 4j ..): see sums.
  [[gnu::always_inline]] static void quarter_words(const uint8_t* p, int h, int j, __m512i w[4]) {
    const __m512i nib = _mm512_set1_epi8(0x0f), top = _mm512_set1_epi8(0x30);
    const __m512i v0 = load(p + 64 * (16 * h + j)), v1 = load(p + 64 * (16 * h + 8 + j));
    const __m512i hb = load(p + 2048 + 64 * (8 * h + j));
    w[0] =
        _mm512_or_si512(_mm512_and_si512(v0, nib), _mm512_and_si512(_mm512_slli_epi16(hb, 4), top));
    w[1] =
        _mm512_or_si512(_mm512_and_si512(v1, nib), _mm512_and_si512(_mm512_slli_epi16(hb, 2), top));
    w[2] =
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v0, 4), nib), _mm512_and_si512(hb, top));
    w[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v1, 4), nib),
                           _mm512_and_si512(_mm512_srli_epi16(hb, 2), top));
  }
  static void all_words(const uint8_t* p, __m512i* out) {  // word k = weights 4k .. 4k + 3
    for (int h = 0; h < 2; ++h)
      for (int j = 0; j < 8; ++j) {
        __m512i w[4];
        quarter_words(p, h, j, w);
        for (int q = 0; q < 4; ++q) _mm512_store_si512(out + 32 * h + 8 * q + j, w[q]);
      }
  }
  // Weight e = 128h + 32q + l takes ql byte 64h + 32(q & 1) + l (low nibble for q < 2) and bits
  // 2q, 2q + 1 of qh byte 32h + l. So one ql pair and one qh vector (h, j) give word j of all four
  // quarters q, which are sub-blocks g = 8h + 2q + j / 4: the four sums run side by side, each
  // vector read once.
  template <int NT>
  [[gnu::always_inline]] static void sums(const uint8_t* p, const TokenBlock* x, __m512i* isum) {
    const uint8_t* sp = scales(p);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h)
#pragma GCC unroll 2
      for (int jh = 0; jh < 2; ++jh) {
        __m512i s[4][NT];
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q)
#pragma GCC unroll 4
          for (int t = 0; t < NT; ++t) s[q][t] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 4 * jh; j < 4 * jh + 4; ++j) {
          __m512i w[4];
          quarter_words(p, h, j, w);
#pragma GCC unroll 4
          for (int q = 0; q < 4; ++q)
#pragma GCC unroll 4
            for (int t = 0; t < NT; ++t)
              s[q][t] =
                  _mm512_dpbusd_epi32(s[q][t], w[q], bcast_word(x[t].q + 128 * h + 32 * q + 4 * j));
        }
        // Sub-blocks in order g = 8h + 2q + jh: integer sums, so any order gives the same.
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
          const __m512i sc = scale(sp, 8 * h + 2 * q + jh);
#pragma GCC unroll 4
          for (int t = 0; t < NT; ++t)
            isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s[q][t], sc));
        }
      }
  }
};

// isum[t] += each sub-block's exact integer sum times its scale, sub-block by sub-block
// (Q4_K, Q5_K: one sub-block's words come from 8 quant vectors). Unrolled at compile time, so each
// sub-block's field offsets and shifts are constants.
template <typename I, int NT>
[[gnu::always_inline]] inline void subblock_sums(const uint8_t* p, const TokenBlock* x,
                                                 __m512i* isum) {
  constexpr int kPer = kWords / I::kScales;
  const uint8_t* sp = I::scales(p);
  [&]<int... J>(std::integer_sequence<int, J...>) {
    (
        [&] {
          constexpr int j = J;
          // Two chains (even and odd words) per token: exact integer sums, half the latency.
          __m512i w[kPer], s[2][NT];
          I::words(p, j, w);
#pragma GCC unroll 4
          for (int t = 0; t < NT; ++t) s[0][t] = s[1][t] = _mm512_setzero_si512();
#pragma GCC unroll 8
          for (int k = 0; k < kPer; ++k)
#pragma GCC unroll 4
            for (int t = 0; t < NT; ++t)
              s[k % 2][t] =
                  _mm512_dpbusd_epi32(s[k % 2][t], w[k], bcast_word(x[t].q + 4 * (j * kPer + k)));
          const __m512i sc = I::scale(sp, j);
#pragma GCC unroll 4
          for (int t = 0; t < NT; ++t)
            isum[t] = _mm512_add_epi32(isum[t],
                                       _mm512_mullo_epi32(_mm512_add_epi32(s[0][t], s[1][t]), sc));
        }(),
        ...);
  }
  (std::make_integer_sequence<int, I::kScales>{});
}

// acc[t] lane r = row r of an interleaved group . token t, for NT tokens: packed_tile's
// operations on values read in place.
template <DType T, int NT>
void interleaved_tile(const uint8_t* g, int64_t nsb, const Q8KActivations* xs, __m512 acc[kTile]) {
  using I = IK<T>;
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nsb; ++b) {
    const uint8_t* p = g + b * I::kBytes;
    for (int l = 0; l < 4; ++l)  // the stream ahead, one super-block away
      _mm_prefetch(reinterpret_cast<const char*>(p + I::kBytes + (I::kBytes / 4) * l), _MM_HINT_T0);
    const uint8_t* sp = I::scales(p);
    TokenBlock x[NT];
    __m512i isum[NT], ipair[NT];
    for (int t = 0; t < NT; ++t)
      x[t] = token_block(xs[t], b), isum[t] = ipair[t] = _mm512_setzero_si512();
    I::template sums<NT>(p, x, isum);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      const __m512i pv = I::pair(sp, i);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t)
        ipair[t] = _mm512_dpwssd_epi32(ipair[t], pv, bcast_word(x[t].bsum + 2 * i));
    }
    __m512 d, dmin = _mm512_setzero_ps();
    I::ds(p, &d, &dmin);
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      if constexpr (T == DType::kQ6_K)
        isum[t] = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(ipair[t], 5));
      acc[t] = finish<T>(acc[t], isum[t], ipair[t], d, dmin, x[t].d);
    }
  }
}

// A group's super-blocks from the interleaved form into packed_tile's (kq512::PackedSb): the
// same values, laid out once so that many token tiles need no unpacking (prefill).
template <DType T>
void pack_group(const uint8_t* g, int64_t nsb, uint8_t* q) {
  using I = IK<T>;
  for (int64_t b = 0; b < nsb; ++b) {
    const uint8_t* p = g + b * I::kBytes;
    uint8_t* o = q + b * kq512::kSbBytes;
    I::all_words(p, kq512::PackedSb::words(o));
    const uint8_t* sp = I::scales(p);
    for (int j = 0; j < I::kScales; ++j)
      _mm512_store_si512(kq512::PackedSb::scales(o) + j, I::scale(sp, j));
    for (int i = 0; i < 8; ++i) _mm512_store_si512(kq512::PackedSb::pairs(o) + i, I::pair(sp, i));
    __m512 d, dmin = _mm512_setzero_ps();
    I::ds(p, &d, &dmin);
    _mm512_store_ps(reinterpret_cast<float*>(kq512::PackedSb::ds(o)), d);
    _mm512_store_ps(reinterpret_cast<float*>(kq512::PackedSb::ds(o) + 1), dmin);
  }
}

// Whole groups (n_rows a multiple of 16) against n_tok tokens: token tiles walk over a pass of
// groups small enough to stay in L2. Up to one tile of tokens reads the groups in place (decode);
// more read a pass packed once (prefill): the same values, so the same bits either way.
constexpr int64_t kPassBytes = 256 << 10;

template <DType T>
void gemm(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8KActivations* xs,
          int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  const int64_t nsb = k / kKBlock, n_group = n_rows / kGroup;
  const int64_t group_bytes = kGroup * static_cast<int64_t>(row_bytes);
  if (n_tok <= kTile) {
    for (int64_t g = 0; g < n_group; ++g)
      with_tile(static_cast<int>(n_tok), [&]<int NT>() {
        __m512 acc[kTile];
        interleaved_tile<T, NT>(w + g * group_bytes, nsb, xs, acc);
        for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * y_stride + g * kGroup, acc[t]);
      });
    return;
  }
  kq512::packed_passes<T>(
      n_group, n_rows, nsb, kPassBytes, xs, n_tok, y, y_stride,
      [&](int64_t g, uint8_t* q) { pack_group<T>(w + g * group_bytes, nsb, q); });
}

}  // namespace

GemmKFn gemm_kquant_interleaved_avx512(DType weights) {
  return kquant_instance(weights, []<DType T>() -> GemmKFn { return gemm<T>; });
}

}  // namespace rme
