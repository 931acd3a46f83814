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
#include "kernels/tile_dispatch.h"

namespace rme {
namespace {

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

// The interleaved form (interleave.h): a group's block b is its 16 f16 scales, then the quant
// words. Q4_0 stores 4 vectors of nibble pairs (word k: low nibbles of vector k, word k + 4: its
// high nibbles), Q8_0 8 vectors already offset by 128: the packed path's words, so the same
// integers, the same operations and the same bits as both row paths above.
template <typename B>
struct Interleaved;
template <>
struct Interleaved<Q4> {
  static constexpr int64_t kBlockBytes = 32 + 4 * 64;
  static void words(const uint8_t* p, __m512i w[kWords]) {
    const __m512i m = _mm512_set1_epi8(0x0f);
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __m512i v = _mm512_loadu_si512(p + 64 * k);
      w[k] = _mm512_and_si512(v, m);
      w[k + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m);
    }
  }
};
template <>
struct Interleaved<Q8> {
  static constexpr int64_t kBlockBytes = 32 + 8 * 64;
  static void words(const uint8_t* p, __m512i w[kWords]) {
#pragma GCC unroll 8
    for (int k = 0; k < kWords; ++k) w[k] = _mm512_loadu_si512(p + 64 * k);
  }
};

// out[t][r] = row r of an interleaved group . token t, for NT tokens. Each block's 8 products
// run as two chains (even and odd words) added at the end: integer sums, so the same integers
// as one chain, with half the latency decode would otherwise wait on.
template <typename B, int NT>
void interleaved_tile(const uint8_t* g, int64_t nb, const Q8Activations* xs,
                      float out[kTile][kGroup]) {
  using IB = Interleaved<B>;
  __m512 acc[NT];
  const int8_t* xq[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps(), xq[t] = xs[t].q.data();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = g + b * IB::kBlockBytes;
    _mm_prefetch(reinterpret_cast<const char*>(blk + 8 * IB::kBlockBytes), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk + 8 * IB::kBlockBytes + 192), _MM_HINT_T0);
    __m512i wk[kWords];
    IB::words(blk + 32, wk);
    __m512i s0[NT], s1[NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) s0[t] = s1[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int k = 0; k < kWords; k += 2) {
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) {
        int32_t w0, w1;
        std::memcpy(&w0, xq[t] + b * 32 + k * 4, 4);
        std::memcpy(&w1, xq[t] + b * 32 + k * 4 + 4, 4);
        s0[t] = _mm512_dpbusd_epi32(s0[t], wk[k], _mm512_set1_epi32(w0));
        s1[t] = _mm512_dpbusd_epi32(s1[t], wk[k + 1], _mm512_set1_epi32(w1));
      }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t)
      acc[t] = block_finish(acc[t], _mm512_add_epi32(s0[t], s1[t]), dw, xs[t].d[b], xs[t].sum[b],
                            B::kOffset);
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(out[t], acc[t]);
}

// Whole interleaved groups (n_rows a multiple of 16) against n_tok tokens. Up to one tile of
// tokens reads the groups in place (decode); more read a pass of groups unpacked once into the
// packed path's words (prefill: no nibble unpacking per tile). The same integers and operations
// either way, hence the same bits.
template <typename B>
void gemm_interleaved(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8Activations* xs,
                      int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  const int64_t nb = k / 32, n_group = n_rows / kGroup;
  const int64_t group_bytes = kGroup * static_cast<int64_t>(row_bytes);
  float out[kTile][kGroup];
  if (n_tok <= kTile) {
    for (int64_t g = 0; g < n_group; ++g) {
      with_tile(static_cast<int>(n_tok),
                [&]<int NT>() { interleaved_tile<B, NT>(w + g * group_bytes, nb, xs, out); });
      for (int t = 0; t < n_tok; ++t)
        std::memcpy(y + t * y_stride + g * kGroup, out[t], sizeof(out[t]));
    }
    return;
  }
  const int64_t packed_bytes = nb * kWords * 64;
  const int64_t per_pass = std::clamp<int64_t>(kPassBytes / packed_bytes, 1, n_group);
  thread_local std::vector<uint8_t> q;
  thread_local std::vector<float> d;
  if (static_cast<int64_t>(q.size()) < per_pass * packed_bytes) q.resize(per_pass * packed_bytes);
  if (static_cast<int64_t>(d.size()) < per_pass * nb * kGroup) d.resize(per_pass * nb * kGroup);
  for (int64_t g0 = 0; g0 < n_group; g0 += per_pass) {
    const int64_t ng = std::min(per_pass, n_group - g0);
    for (int64_t g = 0; g < ng; ++g) {
      const uint8_t* src = w + (g0 + g) * group_bytes;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = src + b * Interleaved<B>::kBlockBytes;
        __m512i wk[kWords];
        Interleaved<B>::words(blk + 32, wk);
        uint8_t* dst = q.data() + g * packed_bytes + b * kWords * 64;
        for (int i = 0; i < kWords; ++i) _mm512_storeu_si512(dst + 64 * i, wk[i]);
        _mm512_storeu_ps(
            d.data() + (g * nb + b) * kGroup,
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk))));
      }
    }
    float out2[2][kTile][kGroup];
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTile) {
      const int nt = static_cast<int>(std::min<int64_t>(kTile, n_tok - t0));
      for (int64_t g = 0; g < ng; g += 2) {
        const int pair = g + 1 < ng ? 2 : 1;
        const uint8_t* gq[2] = {q.data() + g * packed_bytes, q.data() + (g + 1) * packed_bytes};
        const float* gd[2] = {d.data() + g * nb * kGroup, d.data() + (g + 1) * nb * kGroup};
        with_tile(nt, [&]<int NT>() {
          if (pair == 2)
            packed_tile2<B, NT>(gq, gd, nb, xs + t0, out2);
          else
            packed_tile<B, NT>(gq[0], gd[0], nb, xs + t0, out2[0]);
        });
        for (int h = 0; h < pair; ++h)
          for (int t = 0; t < nt; ++t)
            std::memcpy(y + (t0 + t) * y_stride + (g0 + g + h) * kGroup, out2[h][t],
                        sizeof(out2[h][t]));
      }
    }
  }
}

}  // namespace

GemmQ8Fn gemm_int8_interleaved_avx512(DType weights) {
  switch (weights) {
    case DType::kQ4_0:
      return gemm_interleaved<Q4>;
    case DType::kQ8_0:
      return gemm_interleaved<Q8>;
    default:
      return nullptr;
  }
}

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
