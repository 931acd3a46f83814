// kernels: Q4_K, Q5_K and Q6_K on AVX-512 VNNI as an integer matrix product for prefill — 16-row
// groups, one row per int32 lane, as gemm_int8_avx512.cc does for Q4_0/Q8_0. Each pass of groups
// is unpacked and transposed once into packed words (kept in L2) that every 4-token tile reuses;
// the AVX2 kernel unpacks each row again per 4-token tile, what makes its prefill slow. A
// super-block's unsigned quants (0..15, 0..31, 0..63) meet a token's int8 activations in
// vpdpbusd; sub-block sums times their integer scales, the mins (or Q6_K's -32 offset) through
// the activations' 16-element sums in vpdpwssd: all exact int32, so a row's super-block reaches
// floats once, in the same operations for every token of any tile (outputs bit-identical
// whatever the batch).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
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
using kq512::kSbBytes;
using kq512::kTile;
using kq512::kWords;
using kq512::packed_tile;
using kq512::PackedSb;
using kq512::token_block;
using kq512::TokenBlock;
// Packed bytes of the groups of one pass, kept in L2 while the token tiles walk over them.
constexpr int64_t kPassBytes = 384 << 10;

// One super-block of one row unpacked: u[i] = quant of weight i (unsigned), the integer scales
// (8 for Q4_K/Q5_K, 16 for Q6_K) and Q4_K/Q5_K's mins.
struct Unpacked {
  __m512i u[4];  // weights 64c .. 64c + 63 in vector c
  int32_t sc[16];
  int32_t mn[8];
};

inline __m512i join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

template <DType T>
struct KQ;

template <>
struct KQ<DType::kQ4_K> {
  static constexpr size_t kBytes = kQ4KBytes;
  static constexpr int kScales = 8;  // one per 32 weights
  static void unpack(const uint8_t* blk, Unpacked* o) {
    const __m256i nib = _mm256_set1_epi8(0x0f);
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * c));
      o->u[c] = join(_mm256_and_si256(raw, nib), _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib));
    }
  }
};

template <>
struct KQ<DType::kQ5_K> {
  static constexpr size_t kBytes = kQ5KBytes;
  static constexpr int kScales = 8;
  static void unpack(const uint8_t* blk, Unpacked* o) {
    const __m256i nib = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16));
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 48 + 32 * c));
      // Fifth bits: bit 2c of qh for the low nibbles, 2c + 1 for the high ones (qh shifted as c
      // goes).
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(raw, nib),
                                         _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4));
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), nib),
                                         _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4));
      qh = _mm256_srli_epi16(qh, 2);
      o->u[c] = join(lo, hi);
    }
  }
};

template <>
struct KQ<DType::kQ6_K> {
  static constexpr size_t kBytes = kQ6KBytes;
  static constexpr int kScales = 16;  // one per 16 weights
  static void unpack(const uint8_t* blk, Unpacked* o) {
    const __m256i nib = _mm256_set1_epi8(0x0f), top = _mm256_set1_epi8(0x30);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {  // weights 128h .. 128h + 127
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h));
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32));
      const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
      const __m256i q0 = _mm256_or_si256(_mm256_and_si256(a, nib),
                                         _mm256_and_si256(_mm256_slli_epi16(hb, 4), top));
      const __m256i q1 = _mm256_or_si256(_mm256_and_si256(c, nib),
                                         _mm256_and_si256(_mm256_slli_epi16(hb, 2), top));
      const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), nib),
                                         _mm256_and_si256(hb, top));
      const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), nib),
                                         _mm256_and_si256(_mm256_srli_epi16(hb, 2), top));
      o->u[2 * h] = join(q0, q1);
      o->u[2 * h + 1] = join(q2, q3);
    }
  }
};

// Scales (and mins) of one row's super-block into o.
template <DType T>
inline void unpack_scales(const uint8_t* blk, Unpacked* o) {
  if constexpr (T == DType::kQ6_K) {
    for (int g = 0; g < 16; ++g) o->sc[g] = static_cast<int8_t>(blk[192 + g]);
  } else {
    uint64_t sc, mn;
    kquant_scales_mins8(blk + 4, &sc, &mn);
    for (int j = 0; j < 8; ++j)
      o->sc[j] = static_cast<int>(sc >> 8 * j & 0xff),
      o->mn[j] = static_cast<int>(mn >> 8 * j & 0xff);
  }
}

// The 16 rows' d (and, for Q4_K/Q5_K, dmin) of super-block b as floats (rows >= n_valid: +0):
// one gather of each row's 32-bit word holding them.
template <DType T>
inline void group_d(const uint8_t* w, size_t row_bytes, int n_valid, int64_t b, __m512* d,
                    __m512* dmin) {
  const __m512i idx =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(static_cast<int>(row_bytes)));
  const __mmask16 valid = static_cast<__mmask16>((1u << n_valid) - 1u);
  // Q6_K's d is its last two bytes: read the word ending there (bytes 206..209) and take its top.
  const int64_t at = T == DType::kQ6_K ? 206 : 0;
  const __m512i raw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, idx,
                                                  w + b * KQ<T>::kBytes + at, 1);
  if constexpr (T == DType::kQ6_K) {
    *d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(raw, 16)));
  } else {
    *d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
    *dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(raw, 16)));
  }
}

// Transposes 16 vectors of 16 int32 (v[r] = words of row r) into v[k] = word k of every row.
inline void transpose16(__m512i v[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512i* s = t + 4 * i;
    v[4 * i] = _mm512_unpacklo_epi64(s[0], s[2]);
    v[4 * i + 1] = _mm512_unpackhi_epi64(s[0], s[2]);
    v[4 * i + 2] = _mm512_unpacklo_epi64(s[1], s[3]);
    v[4 * i + 3] = _mm512_unpackhi_epi64(s[1], s[3]);
  }
  // Per 128-bit lane L, v[4i + j] now holds column 4L + j of rows 4i .. 4i + 3.
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm512_shuffle_i32x4(v[j], v[4 + j], 0x88);
    t[4 + j] = _mm512_shuffle_i32x4(v[j], v[4 + j], 0xdd);
    t[8 + j] = _mm512_shuffle_i32x4(v[8 + j], v[12 + j], 0x88);
    t[12 + j] = _mm512_shuffle_i32x4(v[8 + j], v[12 + j], 0xdd);
  }
  for (int j = 0; j < 8; ++j) {
    v[j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0x88);
    v[8 + j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0xdd);
  }
}

// Packs one group's super-blocks into q (nsb * kSbBytes). Rows r >= n_valid: zero quants, scales
// and d, so their lanes compute zeros that are never stored.
template <DType T>
void pack_group(const uint8_t* w, size_t row_bytes, int n_valid, int64_t nsb, uint8_t* q) {
  alignas(64) __m512i rows[16][4];
  alignas(64) int32_t sc[16][16], pr[8][16];
  for (int64_t b = 0; b < nsb; ++b) {
    uint8_t* p = q + b * kSbBytes;
    for (int r = 0; r < kGroup; ++r) {
      Unpacked u;
      if (r < n_valid) {
        const uint8_t* blk = w + r * row_bytes + b * KQ<T>::kBytes;
        KQ<T>::unpack(blk, &u);
        unpack_scales<T>(blk, &u);
      } else {
        for (auto& v : u.u) v = _mm512_setzero_si512();
        std::fill(u.sc, u.sc + 16, 0), std::fill(u.mn, u.mn + 8, 0);
      }
      for (int c = 0; c < 4; ++c) rows[r][c] = u.u[c];
      for (int j = 0; j < KQ<T>::kScales; ++j) sc[j][r] = u.sc[j];
      // Two int16 halves built unsigned (a negative scale shifted left is no sanitizer's worry).
      for (int i = 0; i < 8; ++i) {
        const uint32_t lo = static_cast<uint32_t>(T == DType::kQ6_K ? u.sc[2 * i] : u.mn[i]);
        const uint32_t hi = static_cast<uint32_t>(T == DType::kQ6_K ? u.sc[2 * i + 1] : u.mn[i]);
        pr[i][r] = static_cast<int32_t>((lo & 0xffff) | (hi << 16));
      }
    }
    for (int c = 0; c < 4; ++c) {
      __m512i v[16];
      for (int r = 0; r < kGroup; ++r) v[r] = rows[r][c];
      transpose16(v);
      for (int k = 0; k < 16; ++k) _mm512_store_si512(PackedSb::words(p) + 16 * c + k, v[k]);
    }
    for (int j = 0; j < KQ<T>::kScales; ++j)
      _mm512_store_si512(PackedSb::scales(p) + j, _mm512_load_si512(sc[j]));
    for (int i = 0; i < 8; ++i)
      _mm512_store_si512(PackedSb::pairs(p) + i, _mm512_load_si512(pr[i]));
    __m512 d, dmin = _mm512_setzero_ps();
    group_d<T>(w, row_bytes, n_valid, b, &d, &dmin);
    _mm512_store_ps(reinterpret_cast<float*>(PackedSb::ds(p)), d);
    _mm512_store_ps(reinterpret_cast<float*>(PackedSb::ds(p) + 1), dmin);
  }
}

// Rows against n_tok tokens through packed groups, token tiles walking over each pass.
template <DType T>
void gemm(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8KActivations* xs,
          int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  const int64_t nsb = k / kKBlock;
  kq512::packed_passes<T>((n_rows + kGroup - 1) / kGroup, n_rows, nsb, kPassBytes, xs, n_tok, y,
                          y_stride, [&](int64_t g, uint8_t* q) {
                            const int64_t r0 = g * kGroup;
                            const int n_valid =
                                static_cast<int>(std::min<int64_t>(kGroup, n_rows - r0));
                            pack_group<T>(w + r0 * row_bytes, row_bytes, n_valid, nsb, q);
                          });
}

}  // namespace

GemmKFn gemm_kquant_avx512(DType weights) {
  return kquant_instance(weights, []<DType T>() -> GemmKFn { return gemm<T>; });
}

}  // namespace rme
