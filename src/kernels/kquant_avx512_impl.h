// kernels: helpers shared by the AVX-512 VNNI K-quant kernels (rows: gemm_kquant_avx512.cc,
// interleaved: gemm_kquant_interleaved_avx512.cc) — included only by files built with AVX-512
// VNNI flags, so that both compute a super-block's floats in the very same operations.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/dot_kquant.h"
#include "kernels/tile_dispatch.h"
#include "tensor/dtype.h"

namespace rme::kq512 {

constexpr int kGroup = 16;           // rows per group: one per int32 lane
constexpr int kTile = 4;             // tokens per tile
constexpr int kWords = kKBlock / 4;  // 4-byte words per super-block row

// A token's super-block b: int8 quants, scale, and the 16-element sums as int32 words of pairs.
struct TokenBlock {
  const int8_t* q;
  const int16_t* bsum;  // read as int32 words: word i = (bsum[2i], bsum[2i + 1])
  float d;
};
inline TokenBlock token_block(const Q8KActivations& x, int64_t b) {
  return {x.q.data() + b * kKBlock, x.bsum.data() + b * 16, x.d[b]};
}
inline __m512i bcast_word(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// A super-block's float contribution for 16 rows from its exact integers (isum already holds
// Q6_K's offset correction; imin is Q4_K/Q5_K's mins term): the same operations for every token.
template <DType T>
inline __m512 finish(__m512 acc, __m512i isum, __m512i imin, __m512 d, __m512 dmin, float dx) {
  const __m512 vx = _mm512_set1_ps(dx);
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d, vx), acc);
  if constexpr (T != DType::kQ6_K)
    acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(imin), _mm512_mul_ps(dmin, vx), acc);
  return acc;
}

// Packed bytes of one group's super-block: 64 word vectors, up to 16 scale vectors, 8 min (or
// Q6_K scale-pair) vectors, d and dmin.
constexpr int64_t kSbBytes = 64 * (kWords + 16 + 8 + 2);
constexpr int scales_of(DType t) { return t == DType::kQ6_K ? 16 : 8; }  // sub-block scales

// Layout of one group's super-block: word vectors k (lane r: row r's quants 4k .. 4k + 3), scale
// vectors (int32 per row), min pairs (Q4_K/Q5_K: (min_j, min_j) as int16 pairs against bsum pairs
// 2j, 2j + 1; Q6_K: (scale 2i, scale 2i + 1) against bsum pairs i), d, dmin.
struct PackedSb {
  static __m512i* words(uint8_t* p) { return reinterpret_cast<__m512i*>(p); }
  static __m512i* scales(uint8_t* p) { return words(p) + kWords; }
  static __m512i* pairs(uint8_t* p) { return scales(p) + 16; }
  static __m512* ds(uint8_t* p) { return reinterpret_cast<__m512*>(pairs(p) + 8); }
};

// acc[t] lane r = row r of a packed group . token t, for NT tokens.
template <DType T, int NT>
void packed_tile(uint8_t* q, int64_t nsb, const Q8KActivations* xs, __m512 acc[kTile]) {
  constexpr int kPer = kWords / scales_of(T);  // words per scale
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nsb; ++b) {
    uint8_t* p = q + b * kSbBytes;
    TokenBlock x[NT];
    __m512i isum[NT], ipair[NT];
    for (int t = 0; t < NT; ++t)
      x[t] = token_block(xs[t], b), isum[t] = ipair[t] = _mm512_setzero_si512();
    for (int j = 0; j < scales_of(T); ++j) {
      __m512i s[NT];
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) s[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int k = j * kPer; k < (j + 1) * kPer; ++k) {
        const __m512i wk = _mm512_load_si512(PackedSb::words(p) + k);
#pragma GCC unroll 4
        for (int t = 0; t < NT; ++t)
          s[t] = _mm512_dpbusd_epi32(s[t], wk, bcast_word(x[t].q + 4 * k));
      }
      const __m512i sc = _mm512_load_si512(PackedSb::scales(p) + j);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t)
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s[t], sc));
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      const __m512i pv = _mm512_load_si512(PackedSb::pairs(p) + i);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t)
        ipair[t] = _mm512_dpwssd_epi32(ipair[t], pv, bcast_word(x[t].bsum + 2 * i));
    }
    const __m512 d = _mm512_load_ps(reinterpret_cast<float*>(PackedSb::ds(p)));
    const __m512 dmin = _mm512_load_ps(reinterpret_cast<float*>(PackedSb::ds(p) + 1));
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      // Q6_K: the -32 offset, 32 * sum of scale * bsum, comes off the integer sum.
      if constexpr (T == DType::kQ6_K)
        isum[t] = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(ipair[t], 5));
      acc[t] = finish<T>(acc[t], isum[t], ipair[t], d, dmin, x[t].d);
    }
  }
}

// Groups [0, n_group) against n_tok tokens through packed_tile: each pass of groups (pass_bytes
// of packed super-blocks, kept in L2) is packed once by pack(g, dst) into a thread-local buffer,
// then 4-token tiles walk over it. Group g's outputs for token t go to y + t * y_stride + 16g;
// lanes of rows >= n_rows are not stored.
template <DType T, typename Pack>
void packed_passes(int64_t n_group, int64_t n_rows, int64_t nsb, int64_t pass_bytes,
                   const Q8KActivations* xs, int64_t n_tok, float* y, int64_t y_stride,
                   const Pack& pack) {
  const int64_t group_bytes = nsb * kSbBytes;
  const int64_t per_pass = std::clamp<int64_t>(pass_bytes / group_bytes, 1, n_group);
  struct alignas(64) Line {
    uint8_t b[64];
  };
  thread_local std::vector<Line> buf;
  if (static_cast<int64_t>(buf.size()) < per_pass * group_bytes / 64)
    buf.resize(per_pass * group_bytes / 64);
  uint8_t* q = reinterpret_cast<uint8_t*>(buf.data());
  for (int64_t g0 = 0; g0 < n_group; g0 += per_pass) {
    const int64_t ng = std::min(per_pass, n_group - g0);
    for (int64_t g = 0; g < ng; ++g) pack(g0 + g, q + g * group_bytes);
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTile) {
      const int nt = static_cast<int>(std::min<int64_t>(kTile, n_tok - t0));
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t r0 = (g0 + g) * kGroup;
        const __mmask16 m =
            static_cast<__mmask16>((1u << std::min<int64_t>(kGroup, n_rows - r0)) - 1u);
        with_tile(nt, [&]<int NT>() {
          __m512 acc[kTile];
          packed_tile<T, NT>(q + g * group_bytes, nsb, xs + t0, acc);
          for (int t = 0; t < NT; ++t)
            _mm512_mask_storeu_ps(y + (t0 + t) * y_stride + r0, m, acc[t]);
        });
      }
    }
  }
}

}  // namespace rme::kq512
