// kernels: Q4_0 and Q8_0 on AVX-512 VNNI as one integer kernel for decode, prefill and batch
// invariance — AVX2's design (gemm_int8_avx2.cc) with 16-row groups, one row per int32 lane.
// Weights enter vpdpbusd as unsigned bytes (Q4_0's nibbles as stored, 0..15; Q8_0's bytes with
// the sign bit flipped, w + 128) against the token's signed bytes, so a block's 8 vpdpbusd give
// each row's exact sum of (w + offset) * x; the offset times the block's token sum comes off
// exactly in f32 (every integer here is below 2^24). Then one multiply-add per block in block
// order. A group is read two ways that give the same integers, hence the same bits: straight
// from the rows (decode and 2 tokens: each row's products reduced across lanes by a fixed tree)
// or transposed once into packed words that every token tile reuses (prefill).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/dot_q8.h"
#include "kernels/int8_avx512_impl.h"
#include "kernels/tile_dispatch.h"

namespace rme {
namespace {

using i8x512::block_finish;
using i8x512::kGroup;
using i8x512::kPassBytes;
using i8x512::kTile;
using i8x512::kWords;
using i8x512::packed_tile;
using i8x512::packed_tile2;
using i8x512::Q4;
using i8x512::Q8;

// The 16 rows' f16 scales of block b as floats (rows r >= n_valid: +0): one gather of each row's
// first 4 bytes (the scale leads both block types), narrowed to 16 bits. A stack array read
// back as a vector would stall store forwarding on every block.
template <typename B>
inline __m512 group_scales(const uint8_t* w, size_t row_bytes, int n_valid, int64_t b) {
  const __m512i idx =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(static_cast<int>(row_bytes)));
  const __mmask16 valid = static_cast<__mmask16>((1u << n_valid) - 1u);
  const __m512i raw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, idx,
                                                  w + b * sizeof(typename B::Block), 1);
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
}

// Transposes 8 rows of 8 int32 (v[r] = words of row r) into v[k] = word k of every row.
inline void transpose8x8(__m256i v[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {
    __m256i* o = u + 4 * h;
    const __m256i* s = t + 4 * h;
    o[0] = _mm256_unpacklo_epi64(s[0], s[2]);
    o[1] = _mm256_unpackhi_epi64(s[0], s[2]);
    o[2] = _mm256_unpacklo_epi64(s[1], s[3]);
    o[3] = _mm256_unpackhi_epi64(s[1], s[3]);
  }
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x20);
    v[k + 4] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x31);
  }
}

// Packs one group's blocks: q[(b * 8 + k) * 64 ..] = word k of block b of every row (lane r =
// row r), d[b * 16 + r] = the scales. Missing rows (r >= n_valid) get zero words and scales.
template <typename B>
void pack_group(const uint8_t* w, size_t row_bytes, int n_valid, int64_t nb, uint8_t* q, float* d) {
  for (int64_t b = 0; b < nb; ++b) {
    __m256i lo[8], hi[8];
    for (int r = 0; r < 8; ++r) {
      auto blk = [&](int row) -> const typename B::Block& {
        return reinterpret_cast<const typename B::Block*>(w + row * row_bytes)[b];
      };
      lo[r] = r < n_valid ? B::load(blk(r)) : _mm256_setzero_si256();
      hi[r] = r + 8 < n_valid ? B::load(blk(r + 8)) : _mm256_setzero_si256();
    }
    transpose8x8(lo);
    transpose8x8(hi);
    for (int k = 0; k < kWords; ++k)
      _mm512_storeu_si512(q + (b * kWords + k) * 64,
                          _mm512_inserti64x4(_mm512_castsi256_si512(lo[k]), hi[k], 1));
    _mm512_storeu_ps(d + b * kGroup, group_scales<B>(w, row_bytes, n_valid, b));
  }
}

// One token against a full group straight from the rows (decode). Rows r and r + 8 share a
// register (halves), so 8 vpdpbusd give each row's 8 partial sums; a fixed tree of unpacks and
// adds then leaves row r's exact block sum in lane r — the packed path's integers.
template <typename B>
__m512 straight_group(const uint8_t* w, size_t row_bytes, int64_t nb, const Q8Activations& x) {
  using Block = typename B::Block;
  constexpr int kLines = (kGroup * sizeof(Block) + 63) / 64;
  const uint8_t* next = w + kGroup * row_bytes;
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    // One linear stream for the prefetcher: the next group, a block's share per block.
    for (int l = 0; l < kLines; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(next + b * kGroup * sizeof(Block) + 64 * l),
                   _MM_HINT_T0);
    auto blk = [&](int r) -> const Block& {
      return reinterpret_cast<const Block*>(w + r * row_bytes)[b];
    };
    const __m512i xv = _mm512_broadcast_i64x4(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q.data() + b * 32)));
    __m512i p[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r)
      p[r] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), B::load_pair(blk(r), blk(r + 8)), xv);
    // Per 128-bit lane: pairs, then quads of rows; lanes of the two halves stay apart.
    __m512i a[4], c[2];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i)
      a[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2 * i], p[2 * i + 1]),
                              _mm512_unpackhi_epi32(p[2 * i], p[2 * i + 1]));
    // Now a[i] per 128-bit lane: rows 2i, 2i+1, 2i, 2i+1 (partials split over pairs).
    for (int i = 0; i < 2; ++i)
      c[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * i], a[2 * i + 1]),
                              _mm512_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
    // c[0] per 128-bit lane: rows 0-3 (of its half) over that lane's 4 partials; c[1] rows 4-7.
    // Lanes L0 L1 | L2 L3 are (rows 0-7 half, rows 8-15 half): sum L0+L1 and L2+L3.
    const __m512i even = _mm512_shuffle_i32x4(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i odd = _mm512_shuffle_i32x4(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1));
    // even = c0.L0 c0.L2 c1.L0 c1.L2: rows 0-3, 8-11, 4-7, 12-15 (first partial halves).
    const __m512i sum = _mm512_add_epi32(even, odd);
    const __m512i s = _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15), sum);
    acc = block_finish(acc, s, group_scales<B>(w, row_bytes, kGroup, b), x.d[b], x.sum[b],
                       B::kOffset);
  }
  return acc;
}

// Rows against n_tok tokens through packed groups, token tiles walking over each pass.
template <typename B>
void gemm_packed(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8Activations* xs,
                 int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  const int64_t nb = k / 32;
  const int64_t n_group = (n_rows + kGroup - 1) / kGroup;
  auto valid = [&](int64_t r0) { return static_cast<int>(std::min<int64_t>(kGroup, n_rows - r0)); };
  const int64_t group_bytes = nb * kWords * 64;
  const int64_t per_pass = std::clamp<int64_t>(kPassBytes / group_bytes, 1, n_group);
  thread_local std::vector<uint8_t> q;
  thread_local std::vector<float> d;
  if (static_cast<int64_t>(q.size()) < per_pass * group_bytes) q.resize(per_pass * group_bytes);
  if (static_cast<int64_t>(d.size()) < per_pass * nb * kGroup) d.resize(per_pass * nb * kGroup);
  float out[kTile][kGroup];
  for (int64_t g0 = 0; g0 < n_group; g0 += per_pass) {
    const int64_t ng = std::min(per_pass, n_group - g0);
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t r0 = (g0 + g) * kGroup;
      pack_group<B>(w + r0 * row_bytes, row_bytes, valid(r0), nb, q.data() + g * group_bytes,
                    d.data() + g * nb * kGroup);
    }
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTile) {
      const int nt = static_cast<int>(std::min<int64_t>(kTile, n_tok - t0));
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t r0 = (g0 + g) * kGroup;
        with_tile(nt, [&]<int NT>() {
          packed_tile<B, NT>(q.data() + g * group_bytes, d.data() + g * nb * kGroup, nb, xs + t0,
                             out);
        });
        for (int t = 0; t < nt; ++t)
          std::memcpy(y + (t0 + t) * y_stride + r0, out[t], valid(r0) * sizeof(float));
      }
    }
  }
}

// Up to this many tokens, whole groups are read straight from the rows, once per token.
constexpr int64_t kStraightTokens = 2;

template <typename B>
void gemm(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8Activations* xs,
          int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  int64_t done = 0;
  if (n_tok <= kStraightTokens)
    for (; done + kGroup <= n_rows; done += kGroup)
      for (int64_t t = 0; t < n_tok; ++t)
        _mm512_storeu_ps(y + t * y_stride + done,
                         straight_group<B>(w + done * row_bytes, row_bytes, k / 32, xs[t]));
  if (done < n_rows)
    gemm_packed<B>(w + done * row_bytes, row_bytes, n_rows - done, xs, n_tok, k, y + done,
                   y_stride);
}

}  // namespace

GemmQ8Fn gemm_int8_avx512(DType weights) {
  switch (weights) {
    case DType::kQ4_0:
      return gemm<Q4>;
    case DType::kQ8_0:
      return gemm<Q8>;
    default:
      return nullptr;
  }
}

}  // namespace rme
