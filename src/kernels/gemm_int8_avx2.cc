// kernels: Q4_0 and Q8_0 on AVX2 as one integer kernel for decode, prefill and batch invariance.
// Rows go in groups of 8 whose 4-byte words interleave (lane r of vector k holds elements 4k..4k+3
// of row r), so one vpmaddubsw against a broadcast word of a token serves 8 rows, and a block's
// sums land one row per lane: no horizontal sums, and the int->float convert and the scale
// multiply-add happen once per 8 rows instead of once per row. Calls with several tokens repack the
// rows into that layout once and reuse it for every token tile; one token (decode) reads each
// block straight from the rows. Either way each output is computed by the same operations:
// invariant to the batch. The two types differ only in how a block's bytes load and multiply (Q4
// and Q8 below).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/dot_q8.h"
#include "kernels/tile_dispatch.h"

namespace rme {
namespace {

constexpr int kGroup = 8;  // rows per interleaved group: one per int32 lane
constexpr int kTile = 4;   // tokens per register tile (4 integer sums + 4 f32 accumulators)
constexpr int kWords = 8;  // 4-byte words per 32-element block
// Packed bytes of one group kept per pass over the tokens: the groups of one pass stay in L2
// (512 KB per core on the machines measured) while every token tile walks over them.
constexpr int64_t kPassBytes = 192 << 10;

// Transposes 8 rows of 8 int32 (v[r] = words of row r) into v[k] = word k of every row.
inline void transpose8x8(__m256i v[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 0-3, then 4-7
    __m256i* o = u + 4 * h;
    const __m256i* s = t + 4 * h;
    o[0] = _mm256_unpacklo_epi64(s[0], s[2]);  // words 0 | 4
    o[1] = _mm256_unpackhi_epi64(s[0], s[2]);  // words 1 | 5
    o[2] = _mm256_unpacklo_epi64(s[1], s[3]);  // words 2 | 6
    o[3] = _mm256_unpackhi_epi64(s[1], s[3]);  // words 3 | 7
  }
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x20);
    v[k + 4] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x31);
  }
}

// Q4_0: nibbles unpacked to bytes 0..15 (w + 8; unsigned, vpmaddubsw's first operand as they are).
// A word's products stay in int16 lanes: 8 words of pair sums (each <= 2 * 15 * 127) add up to
// at most 30480, so a block is summed in int16 and widened once; then 8 * sum(q) comes off.
struct Q4 {
  using Block = Q4_0Block;
  static __m256i load(const Block& blk) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.q));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
  }
  static __m256i missing() { return _mm256_set1_epi8(8); }  // a zero weight
  struct Word {
    __m256i w;
  };
  static Word word(__m256i w) { return {w}; }
  static __m256i product(const Word& w, __m256i x) { return _mm256_maddubs_epi16(w.w, x); }
  static __m256i add(__m256i a, __m256i b) { return _mm256_add_epi16(a, b); }
  // The block's exact sum per row as floats, less the nibbles' offset (exact: integers < 2^24).
  static __m256 finish(__m256i s, const float* xsum) {
    const __m256 isum = _mm256_cvtepi32_ps(_mm256_madd_epi16(s, _mm256_set1_epi16(1)));
    return _mm256_fnmadd_ps(_mm256_set1_ps(8.0f), _mm256_broadcast_ss(xsum), isum);
  }
};

// Q8_0: signed bytes, so the sign trick: |w| is the unsigned operand and the token's bytes carry
// w's sign (|w| <= 128, |q| <= 127: pair sums <= 32512, no saturation). Two pair sums can
// overflow int16, so each word's products widen to int32 at once (vpmaddwd): about 1.5x Q4_0's
// integer work per block.
struct Q8 {
  using Block = Q8_0Block;
  static __m256i load(const Block& blk) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.q));
  }
  static __m256i missing() { return _mm256_setzero_si256(); }
  struct Word {
    __m256i w, w_abs;
  };
  static Word word(__m256i w) { return {w, _mm256_sign_epi8(w, w)}; }
  static __m256i product(const Word& w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w.w_abs, _mm256_sign_epi8(x, w.w)),
                             _mm256_set1_epi16(1));
  }
  static __m256i add(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
  static __m256 finish(__m256i s, const float*) { return _mm256_cvtepi32_ps(s); }
};

// Block b of rows [0, n_valid) of one group (n_valid <= 8; missing rows get zero scales),
// transposed: v[k] = word k of every row (as B::load gives them), dw = the 8 scales.
template <typename B>
inline void load_group_block(const uint8_t* w, size_t row_bytes, int n_valid, int64_t b,
                             __m256i v[kGroup], __m256& dw) {
  uint16_t d[kGroup] = {};  // f16 +0 for missing rows
#pragma GCC unroll 8
  for (int r = 0; r < kGroup; ++r) {
    if (r >= n_valid) {
      v[r] = B::missing();
      continue;
    }
    const typename B::Block& blk = reinterpret_cast<const typename B::Block*>(w + r * row_bytes)[b];
    v[r] = B::load(blk);
    d[r] = blk.d;
  }
  transpose8x8(v);
  // Built in registers: eight 2-byte stores read back as one vector would stall store forwarding.
  dw = _mm256_cvtph_ps(_mm_setr_epi16(d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]));
}

// Packs one group's blocks into q[nb * 256] and d[nb * 8] (the layout load_group_block returns).
template <typename B>
void pack_group(const uint8_t* w, size_t row_bytes, int n_valid, int64_t nb, uint8_t* q, float* d) {
  for (int64_t b = 0; b < nb; ++b) {
    __m256i v[kGroup];
    __m256 dw;
    load_group_block<B>(w, row_bytes, n_valid, b, v, dw);
    for (int k = 0; k < kWords; ++k)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + (b * kWords + k) * 32), v[k]);
    _mm256_storeu_ps(d + b * kGroup, dw);
  }
}

// NT tokens' activations, hoisted out of the block loop.
template <int NT>
struct TokenTile {
  const int8_t* q[NT];
  const float *d[NT], *sum[NT];
  explicit TokenTile(const Q8Activations* xs) {
    for (int t = 0; t < NT; ++t)
      q[t] = xs[t].q.data(), d[t] = xs[t].d.data(), sum[t] = xs[t].sum.data();
  }
};

// One block of a group (v: its 8 word vectors, dw: its scales) into the NT accumulators. Every
// output's float operations are the same whatever NT is or where v came from — the block's
// integer sum is exact, then one convert (and Q4_0's exact offset) and one multiply-add in block
// order — so packed prefill, a batch of any size and one-token decode agree bit for bit. The word
// loop is not unrolled: unrolled with the token loop, GCC hoisted all 32 products of a block ahead
// of their sums and spilled (2.8x slower); this way the 4 + 4 accumulators stay in registers.
template <typename B, int NT>
inline void block_step(const __m256i* v, __m256 dw, int64_t b, const TokenTile<NT>& x,
                       __m256 acc[NT]) {
  __m256i s[NT];
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) s[t] = _mm256_setzero_si256();
  auto word_step = [&](int k) {
    const typename B::Word wk = B::word(_mm256_loadu_si256(v + k));
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      int32_t word;
      std::memcpy(&word, x.q[t] + b * 32 + k * 4, 4);
      s[t] = B::add(s[t], B::product(wk, _mm256_set1_epi32(word)));
    }
  };
  if constexpr (NT == 1) {  // one token: few live registers, so v can stay in them
#pragma GCC unroll 8
    for (int k = 0; k < kWords; ++k) word_step(k);
  } else {
#pragma GCC unroll 1
    for (int k = 0; k < kWords; ++k) word_step(k);
  }
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) {
    const __m256 v_sum = B::finish(s[t], x.sum[t] + b);
    acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(x.d[t] + b)), v_sum, acc[t]);
  }
}

// out[t][r] = row r of the group . token t for NT tokens, from a packed group.
template <typename B, int NT>
void packed_tile(const uint8_t* q, const float* d, int64_t nb, const Q8Activations* xs,
                 float out[kTile][kGroup]) {
  const TokenTile<NT> x(xs);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b)
    block_step<B, NT>(reinterpret_cast<const __m256i*>(q + b * kWords * 32),
                      _mm256_loadu_ps(d + b * kGroup), b, x, acc);
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out[t], acc[t]);
}

// Q4_0's one token against a full group straight from the rows (decode: a packed copy would be
// used once): block_step<Q4, 1>'s operations written out with named registers (through
// load_group_block's arrays GCC kept the transpose on the stack: decode at half speed). The word
// products are added as a tree: exact (every int16 partial sum stays within 8 x 3810), so the
// bits are block_step's.
inline __m256 decode_group_q4(const uint8_t* w, size_t row_bytes, int64_t nb, const int8_t* xq,
                              const float* xd, const float* xsum) {
  using B = Q4;
  using Block = B::Block;
  constexpr int kLines = (kGroup * sizeof(Block) + 63) / 64;  // a block's share of the group
  const uint8_t* next = w + kGroup * row_bytes;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    // The group's 8 rows are contiguous and the next group follows: prefetch it linearly, a
    // block's share per block. Visiting 8 rows side by side breaks the one long stream the
    // hardware prefetcher follows (Q4_0 decode without this: 3x slower).
    for (int l = 0; l < kLines; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(next + b * kGroup * sizeof(Block) + 64 * l),
                   _MM_HINT_T0);
    auto blk = [&](int r) -> const Block& {
      return reinterpret_cast<const Block*>(w + r * row_bytes)[b];
    };
    const __m256i v0 = B::load(blk(0)), v1 = B::load(blk(1)), v2 = B::load(blk(2)),
                  v3 = B::load(blk(3)), v4 = B::load(blk(4)), v5 = B::load(blk(5)),
                  v6 = B::load(blk(6)), v7 = B::load(blk(7));
    const __m256i t0 = _mm256_unpacklo_epi32(v0, v1), t1 = _mm256_unpackhi_epi32(v0, v1),
                  t2 = _mm256_unpacklo_epi32(v2, v3), t3 = _mm256_unpackhi_epi32(v2, v3),
                  t4 = _mm256_unpacklo_epi32(v4, v5), t5 = _mm256_unpackhi_epi32(v4, v5),
                  t6 = _mm256_unpacklo_epi32(v6, v7), t7 = _mm256_unpackhi_epi32(v6, v7);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2),
                  u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3),
                  u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6),
                  u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    // Word k of every row against word k of the token's block.
    auto prod = [&](__m256i lo, __m256i hi, int sel, int k) {
      int32_t word;
      std::memcpy(&word, xq + b * 32 + k * 4, 4);
      return B::product(B::word(_mm256_permute2x128_si256(lo, hi, sel)), _mm256_set1_epi32(word));
    };
    const __m256i s = B::add(B::add(B::add(prod(u0, u4, 0x20, 0), prod(u1, u5, 0x20, 1)),
                                    B::add(prod(u2, u6, 0x20, 2), prod(u3, u7, 0x20, 3))),
                             B::add(B::add(prod(u0, u4, 0x31, 4), prod(u1, u5, 0x31, 5)),
                                    B::add(prod(u2, u6, 0x31, 6), prod(u3, u7, 0x31, 7))));
    const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16(blk(0).d, blk(1).d, blk(2).d, blk(3).d,
                                                     blk(4).d, blk(5).d, blk(6).d, blk(7).d));
    acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(xd + b)), B::finish(s, xsum + b),
                          acc);
  }
  return acc;
}

// Q8_0's one token against a full group straight from the rows, without the transpose: each row's
// block products (already int32, 8 lanes) are summed across lanes by a vphaddd tree that leaves
// row r's exact sum in lane r — the same integers as block_step<Q8, 1>, so the same bits. Faster
// than decode_group_q4's transpose for Q8_0 (4096 x 4096 matrix, 2 threads, 10 alternating runs:
// 56.7 vs 53.5 GFLOP/s, and 47.4 for the per-row kernel it replaced).
inline __m256 decode_group_q8(const uint8_t* w, size_t row_bytes, int64_t nb, const int8_t* xq,
                              const float* xd) {
  constexpr int kLines = (kGroup * sizeof(Q8_0Block) + 63) / 64;
  const uint8_t* next = w + kGroup * row_bytes;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    for (int l = 0; l < kLines; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(next + b * kGroup * sizeof(Q8_0Block) + 64 * l),
                   _MM_HINT_T0);
    auto blk = [&](int r) -> const Q8_0Block& {
      return reinterpret_cast<const Q8_0Block*>(w + r * row_bytes)[b];
    };
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * 32));
    auto row = [&](int r) { return Q8::product(Q8::word(Q8::load(blk(r))), x); };
    // hadd(a, b) = a0+a1 a2+a3 b0+b1 b2+b3 | a4+a5 a6+a7 b4+b5 b6+b7 (per 128-bit half).
    const __m256i h01 = _mm256_hadd_epi32(row(0), row(1)), h23 = _mm256_hadd_epi32(row(2), row(3)),
                  h45 = _mm256_hadd_epi32(row(4), row(5)), h67 = _mm256_hadd_epi32(row(6), row(7));
    const __m256i h0123 = _mm256_hadd_epi32(h01, h23), h4567 = _mm256_hadd_epi32(h45, h67);
    // Lanes now: rows 0 1 2 3 | 0 1 2 3 (halves of the sums) and 4 5 6 7 | 4 5 6 7.
    const __m256i s = _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                                       _mm256_permute2x128_si256(h0123, h4567, 0x31));
    const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16(blk(0).d, blk(1).d, blk(2).d, blk(3).d,
                                                     blk(4).d, blk(5).d, blk(6).d, blk(7).d));
    acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(xd + b)), Q8::finish(s, nullptr),
                          acc);
  }
  return acc;
}

// out[t][r] = row r of the group . token t for NT tokens, straight from the rows: each block is
// transposed in registers once and used by every token (few tokens: writing a packed copy and
// reading it back costs more than the transposes). The same block_step, so the same bits.
template <typename B, int NT>
void straight_tile(const uint8_t* w, size_t row_bytes, int64_t nb, const Q8Activations* xs,
                   float out[kTile][kGroup]) {
  const TokenTile<NT> x(xs);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  constexpr int kLines = (kGroup * sizeof(typename B::Block) + 63) / 64;
  const uint8_t* next = w + kGroup * row_bytes;
  for (int64_t b = 0; b < nb; ++b) {
    for (int l = 0; l < kLines; ++l)  // as decode_group_q4: one linear stream for the prefetcher
      _mm_prefetch(
          reinterpret_cast<const char*>(next + b * kGroup * sizeof(typename B::Block) + 64 * l),
          _MM_HINT_T0);
    __m256i v[kGroup];
    __m256 dw;
    load_group_block<B>(w, row_bytes, kGroup, b, v, dw);
    block_step<B, NT>(v, dw, b, x, acc);
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out[t], acc[t]);
}

void store_tile(const float out[kTile][kGroup], int nt, int rows, float* y, int64_t y_stride) {
  for (int t = 0; t < nt; ++t) std::memcpy(y + t * y_stride, out[t], rows * sizeof(float));
}

// Up to this many tokens a group's rows are read straight (gemm); more, they are packed once.
// Eight straight (two tiles) measured a tie for Q8_0 and slower for Q4_0.
constexpr int64_t kStraightTokens = 4;

// Rows against n_tok tokens through packed groups, token tiles of 4 walking over each pass.
template <typename B>
void gemm_packed(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8Activations* xs,
                 int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  const int64_t nb = k / 32;
  const int64_t n_group = (n_rows + kGroup - 1) / kGroup;
  float out[kTile][kGroup];
  auto valid = [&](int64_t r0) { return static_cast<int>(std::min<int64_t>(kGroup, n_rows - r0)); };
  const int64_t group_bytes = nb * kWords * 32;
  const int64_t per_pass = std::clamp<int64_t>(kPassBytes / group_bytes, 1, n_group);
  thread_local std::vector<uint8_t> q;
  thread_local std::vector<float> d;
  if (static_cast<int64_t>(q.size()) < per_pass * group_bytes) q.resize(per_pass * group_bytes);
  if (static_cast<int64_t>(d.size()) < per_pass * nb * kGroup) d.resize(per_pass * nb * kGroup);
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
        store_tile(out, nt, valid(r0), y + t0 * y_stride + r0, y_stride);
      }
    }
  }
}

template <typename B>
void gemm(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8Activations* xs,
          int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  int64_t done = 0;
  // Whole groups straight from the rows (a last partial group goes packed): one or two tokens
  // each through the one-token kernel (the group's rows come from cache the second time), three
  // or four in one tile.
  if (n_tok <= 2) {
    for (; done + kGroup <= n_rows; done += kGroup)
      for (int64_t t = 0; t < n_tok; ++t)
        if constexpr (std::is_same_v<B, Q8>)
          _mm256_storeu_ps(y + t * y_stride + done,
                           decode_group_q8(w + done * row_bytes, row_bytes, k / 32, xs[t].q.data(),
                                           xs[t].d.data()));
        else
          _mm256_storeu_ps(y + t * y_stride + done,
                           decode_group_q4(w + done * row_bytes, row_bytes, k / 32, xs[t].q.data(),
                                           xs[t].d.data(), xs[t].sum.data()));
  } else if (n_tok <= kStraightTokens) {  // a few tokens (MoE experts, small decode batches)
    float out[kTile][kGroup];
    for (; done + kGroup <= n_rows; done += kGroup)
      for (int64_t t0 = 0; t0 < n_tok; t0 += kTile) {
        const int nt = static_cast<int>(std::min<int64_t>(kTile, n_tok - t0));
        with_tile(nt, [&]<int NT>() {
          straight_tile<B, NT>(w + done * row_bytes, row_bytes, k / 32, xs + t0, out);
        });
        store_tile(out, nt, kGroup, y + t0 * y_stride + done, y_stride);
      }
  }
  if (done < n_rows)
    gemm_packed<B>(w + done * row_bytes, row_bytes, n_rows - done, xs, n_tok, k, y + done,
                   y_stride);
}

}  // namespace

GemmQ8Fn gemm_int8_avx2(DType weights) {
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
