// kernels: AVX512-BF16 bf16 products (gemm_bf16.h) — compiled with -mavx512bf16, only called on
// CPUs that report it (bf16_kernels checks cpu_features().avx512bf16).
#include <immintrin.h>

#include <algorithm>

#include "kernels/gemm_bf16.h"

namespace rme {
namespace {

// Two accumulator chains per output, 4 x 3 tiles (24 accumulators + 7 loads of 32 registers),
// one row at a time for one token: the float tiles' shape on AVX-512 (simd_avx512.h), which
// measured best there for the same reasons (register count, one weight stream per core).
constexpr int kChains = 2, kTileRows = 4, kTileTokens = 3;
constexpr int64_t kStep = 32;  // bf16 pairs: 32 elements per vdpbf16ps

inline __m512bh load_bh(const uint16_t* p) {
  return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p));
}
inline __m512bh load_bh_masked(const uint16_t* p, __mmask32 m) {
  return reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, p));
}

// R rows x T tokens, out[t * R + r]. Every output: chains take the whole 32-element steps in
// turn (leftover steps to chain 0), a masked last step to chain 0, chains added in order, one
// horizontal sum — the same operations for any R and T, hence batch invariance.
template <int R, int T>
void tile(const uint16_t* const* w, const uint16_t* x, int64_t x_stride, int64_t k, float* out) {
  __m512 a[R * T * kChains];
#pragma GCC unroll 32
  for (int j = 0; j < R * T * kChains; ++j) a[j] = _mm512_setzero_ps();
  // One 32-element step into chain c; `masked` zeroes the lanes past k (the last step).
  auto step = [&](int64_t i, int c, bool masked, __mmask32 m) __attribute__((always_inline)) {
    __m512bh xv[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t)
      xv[t] = masked ? load_bh_masked(x + t * x_stride + i, m) : load_bh(x + t * x_stride + i);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512bh wv = masked ? load_bh_masked(w[r] + i, m) : load_bh(w[r] + i);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        __m512& acc = a[(r * T + t) * kChains + c];
        acc = _mm512_dpbf16_ps(acc, wv, xv[t]);
      }
    }
  };
  int64_t i = 0;
  for (; i + kChains * kStep <= k; i += kChains * kStep) {
    if constexpr (T == 1) {  // one token streams its row: fetch ahead, as the float decode does
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) __builtin_prefetch(w[r] + i + 1024);
    }
#pragma GCC unroll 2
    for (int c = 0; c < kChains; ++c) step(i + c * kStep, c, false, 0);
  }
  for (; i + kStep <= k; i += kStep) step(i, 0, false, 0);
  if (i < k) step(i, 0, true, static_cast<__mmask32>((uint64_t{1} << (k - i)) - 1));
#pragma GCC unroll 16
  for (int j = 0; j < R * T; ++j) {
    __m512 s = a[j * kChains];
#pragma GCC unroll 2
    for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, a[j * kChains + c]);
    const int r = j / T, t = j % T;
    out[t * R + r] = _mm512_reduce_add_ps(s);
  }
}

template <int T, int R>
void rows_tile(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const uint16_t* x,
               int64_t x_stride, int64_t k, float* y, int64_t y_stride) {
  auto row = [&](int64_t r) { return reinterpret_cast<const uint16_t*>(w + r * row_bytes); };
  float out[R * T];
  int64_t r = r0;
  for (; r + R <= r1; r += R) {
    const uint16_t* rows[R];
    for (int j = 0; j < R; ++j) rows[j] = row(r + j);
    tile<R, T>(rows, x, x_stride, k, out);
    for (int t = 0; t < T; ++t)
      for (int j = 0; j < R; ++j) y[t * y_stride + r + j] = out[t * R + j];
  }
  for (; r < r1; ++r) {
    const uint16_t* one = row(r);
    tile<1, T>(&one, x, x_stride, k, out);
    for (int t = 0; t < T; ++t) y[t * y_stride + r] = out[t];
  }
}

// Tokens in blocks of 60 and rows in blocks of 32 that stay in L2 while the block's token tiles
// pass (float_dot_impl.h's dot_float_rows, for the same reason).
void bf16_rows(const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint16_t* x,
               int64_t x_stride, int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  constexpr int64_t kTokenBlock = 20 * kTileTokens, kBlockRows = 32;
  for (int64_t j0 = 0; j0 < n_tok; j0 += kTokenBlock) {
    const int64_t j1 = std::min(n_tok, j0 + kTokenBlock);
    for (int64_t b0 = 0; b0 < n_rows; b0 += kBlockRows) {
      const int64_t b1 = std::min(n_rows, b0 + kBlockRows);
      for (int64_t t0 = j0; t0 < j1; t0 += kTileTokens) {
        const uint16_t* xt = x + t0 * x_stride;
        float* yt = y + t0 * y_stride;
        switch (std::min<int64_t>(j1 - t0, kTileTokens)) {
          case 3:
            rows_tile<3, kTileRows>(w, row_bytes, b0, b1, xt, x_stride, k, yt, y_stride);
            break;
          case 2:
            rows_tile<2, kTileRows>(w, row_bytes, b0, b1, xt, x_stride, k, yt, y_stride);
            break;
          default:
            rows_tile<1, 1>(w, row_bytes, b0, b1, xt, x_stride, k, yt, y_stride);
            break;
        }
      }
    }
  }
}

// The interleaved layout (interleave.h; BF16's block is a pair of elements): word i of a 16-row
// group is one 64-byte vector whose lane r holds row r's elements 2i and 2i + 1. NG groups x T
// tokens: each word loads NG vectors and broadcasts each token's pair, NG x T vdpbf16ps whose
// lane r accumulates row r's sum for one token. One accumulator per output, taking the words in
// order, so every output's operations are the same whatever NG and T: batch-invariant, and no
// horizontal sums. y[t * y_stride + g * 16 + r].
template <int NG, int T>
void groups_tile(const uint8_t* w, size_t group_bytes, const uint16_t* x, int64_t x_stride,
                 int64_t words, float* y, int64_t y_stride) {
  __m512 a[NG * T];
#pragma GCC unroll 32
  for (int j = 0; j < NG * T; ++j) a[j] = _mm512_setzero_ps();
  for (int64_t i = 0; i < words; ++i) {
    __m512bh wv[NG];
#pragma GCC unroll 4
    for (int g = 0; g < NG; ++g)
      wv[g] = load_bh(reinterpret_cast<const uint16_t*>(w + g * group_bytes + i * 64));
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      int32_t pair;
      __builtin_memcpy(&pair, x + t * x_stride + 2 * i, 4);
      const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
#pragma GCC unroll 4
      for (int g = 0; g < NG; ++g) a[g * T + t] = _mm512_dpbf16_ps(a[g * T + t], wv[g], b);
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < NG; ++g)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + t * y_stride + g * 16, a[g * T + t]);
}

// Tokens in tiles of 12 (24 accumulators for two groups), the rest in 8, 4, 2, 1.
template <int NG>
void groups_all_tokens(const uint8_t* w, size_t group_bytes, const uint16_t* x, int64_t x_stride,
                       int64_t n_tok, int64_t words, float* y, int64_t y_stride) {
  int64_t t = 0;
  auto run = [&]<int T>() {
    groups_tile<NG, T>(w, group_bytes, x + t * x_stride, x_stride, words, y + t * y_stride,
                       y_stride);
    t += T;
  };
  while (n_tok - t >= 12) run.template operator()<12>();
  if (n_tok - t >= 8) run.template operator()<8>();
  if (n_tok - t >= 4) run.template operator()<4>();
  if (n_tok - t >= 2) run.template operator()<2>();
  if (n_tok - t >= 1) run.template operator()<1>();
}

// Whole groups only (n_rows a multiple of 16): two groups at a time, every token over them while
// their 2 x 16 rows stay in L2.
void bf16_groups(const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint16_t* x,
                 int64_t x_stride, int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  const size_t group_bytes = row_bytes * 16;
  const int64_t n_group = n_rows / 16, words = k / 2;
  int64_t g = 0;
  for (; g + 2 <= n_group; g += 2)
    groups_all_tokens<2>(w + g * group_bytes, group_bytes, x, x_stride, n_tok, words, y + g * 16,
                         y_stride);
  if (g < n_group)
    groups_all_tokens<1>(w + g * group_bytes, group_bytes, x, x_stride, n_tok, words, y + g * 16,
                         y_stride);
}

void bf16_round(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(out + i, reinterpret_cast<__m512i>(v));
  }
  if (i < n) {
    const int64_t left = n - i;
    const __mmask16 lo = static_cast<__mmask16>((1u << std::min<int64_t>(left, 16)) - 1);
    const __mmask16 hi = left > 16 ? static_cast<__mmask16>((1u << (left - 16)) - 1) : 0;
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + i + 16),
                                           _mm512_maskz_loadu_ps(lo, x + i));
    _mm512_mask_storeu_epi16(out + i, static_cast<__mmask32>((uint64_t{1} << left) - 1),
                             reinterpret_cast<__m512i>(v));
  }
}

}  // namespace

const Bf16Kernels& bf16_kernels_avx512() {
  static const Bf16Kernels k{bf16_round, bf16_rows, bf16_groups};
  return k;
}

}  // namespace rme
