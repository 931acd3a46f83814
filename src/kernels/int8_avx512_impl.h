// kernels: what the AVX-512 VNNI Q4_0 / Q8_0 kernels share (rows: gemm_int8_avx512.cc,
// interleaved: gemm_int8_interleaved_avx512.cc) — the weight types' byte loads, the block's float
// step and the packed token tiles, so both layouts give the same bits. Included only by files
// built with AVX-512 VNNI flags.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/dot_q8.h"

namespace rme::i8x512 {

constexpr int kGroup = 16;  // rows per group: one per int32 lane
constexpr int kTile = 4;    // tokens per packed tile
constexpr int kWords = 8;   // 4-byte words per 32-element block
// Packed bytes of the groups of one pass, kept in L2 while the token tiles walk over them.
constexpr int64_t kPassBytes = 256 << 10;

struct Q4 {
  using Block = Q4_0Block;
  static constexpr float kOffset = 8;
  // Elements 0..15 from the low nibbles, 16..31 from the high ones, as bytes 0..15.
  static __m256i load(const Block& blk) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.q));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
  }
  // load(a) in the low half, load(b) in the high one: each 16 bytes broadcast to two 128-bit
  // lanes, the odd lanes shifted down a nibble, all masked.
  static __m512i load_pair(const Block& a, const Block& b) {
    const __m512i t = _mm512_mask_broadcast_i32x4(
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.q))), 0xFF00,
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q)));
    const __m512i shift = _mm512_setr_epi64(0, 0, 0x0004000400040004, 0x0004000400040004, 0, 0,
                                            0x0004000400040004, 0x0004000400040004);
    return _mm512_and_si512(_mm512_srlv_epi16(t, shift), _mm512_set1_epi8(0x0f));
  }
};

struct Q8 {
  using Block = Q8_0Block;
  static constexpr float kOffset = 128;
  static __m256i load(const Block& blk) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.q)),
                            _mm256_set1_epi8(static_cast<char>(0x80)));
  }
  static __m512i load_pair(const Block& a, const Block& b) {
    const __m512i t = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q)), 1);
    return _mm512_xor_si512(t, _mm512_set1_epi8(static_cast<char>(0x80)));
  }
};

// A block's float contribution for 16 rows: exact integer sums s, row scales dw, the token's
// scale and sum. The same operations wherever s came from.
inline __m512 block_finish(__m512 acc, __m512i s, __m512 dw, float xd, float xsum, float offset) {
  const __m512 v =
      _mm512_fnmadd_ps(_mm512_set1_ps(offset), _mm512_set1_ps(xsum), _mm512_cvtepi32_ps(s));
  return _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(xd)), v, acc);
}

// out[t][r] = row r of a packed group . token t, for NT tokens.
template <typename B, int NT>
void packed_tile(const uint8_t* q, const float* d, int64_t nb, const Q8Activations* xs,
                 float out[kTile][kGroup]) {
  __m512 acc[NT];
  const int8_t* xq[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps(), xq[t] = xs[t].q.data();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i s[NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) s[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int k = 0; k < kWords; ++k) {
      const __m512i wk = _mm512_loadu_si512(q + (b * kWords + k) * 64);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) {
        int32_t word;
        std::memcpy(&word, xq[t] + b * 32 + k * 4, 4);
        s[t] = _mm512_dpbusd_epi32(s[t], wk, _mm512_set1_epi32(word));
      }
    }
    const __m512 dw = _mm512_loadu_ps(d + b * kGroup);
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t)
      acc[t] = block_finish(acc[t], s[t], dw, xs[t].d[b], xs[t].sum[b], B::kOffset);
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(out[t], acc[t]);
}

// Two packed groups at once (out[0], out[1]): each token's broadcast words serve both, and each
// group's every output is packed_tile's (the same integers, the same block_finish).
template <typename B, int NT>
void packed_tile2(const uint8_t* const q[2], const float* const d[2], int64_t nb,
                  const Q8Activations* xs, float out[2][kTile][kGroup]) {
  __m512 acc[2][NT];
  const int8_t* xq[NT];
  for (int t = 0; t < NT; ++t) acc[0][t] = acc[1][t] = _mm512_setzero_ps(), xq[t] = xs[t].q.data();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i s[2][NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) s[0][t] = s[1][t] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int k = 0; k < kWords; ++k) {
      const __m512i w0 = _mm512_loadu_si512(q[0] + (b * kWords + k) * 64);
      const __m512i w1 = _mm512_loadu_si512(q[1] + (b * kWords + k) * 64);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) {
        int32_t word;
        std::memcpy(&word, xq[t] + b * 32 + k * 4, 4);
        const __m512i xv = _mm512_set1_epi32(word);
        s[0][t] = _mm512_dpbusd_epi32(s[0][t], w0, xv);
        s[1][t] = _mm512_dpbusd_epi32(s[1][t], w1, xv);
      }
    }
#pragma GCC unroll 2
    for (int g = 0; g < 2; ++g) {
      const __m512 dw = _mm512_loadu_ps(d[g] + b * kGroup);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t)
        acc[g][t] = block_finish(acc[g][t], s[g][t], dw, xs[t].d[b], xs[t].sum[b], B::kOffset);
    }
  }
  for (int g = 0; g < 2; ++g)
    for (int t = 0; t < NT; ++t) _mm512_storeu_ps(out[g][t], acc[g][t]);
}

}  // namespace rme::i8x512
