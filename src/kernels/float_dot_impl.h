// kernels: dot products of F32/F16/BF16 weight rows with f32 activations — one token or a tile of
// tokens — written once against vector traits S (simd_*.h) and compiled per ISA (matmul_avx2.cc,
// matmul_avx512.cc, matmul_neon.cc).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/matmul.h"

namespace rme::simd {

// Loaders turn S::kLanes stored elements at index i into floats; at(i) is the scalar tail.
template <typename S>
struct F32Row {
  const float* p;
  typename S::V load(int64_t i) const { return S::load(p + i); }
  void prefetch(int64_t i) const { __builtin_prefetch(p + i); }
  float at(int64_t i) const { return p[i]; }
};
template <typename S>
struct F16Row {
  const uint16_t* p;
  typename S::V load(int64_t i) const { return S::load_f16(p + i); }
  void prefetch(int64_t i) const { __builtin_prefetch(p + i); }
  float at(int64_t i) const { return S::f16_to_f32(p[i]); }
};
template <typename S>
struct BF16Row {
  const uint16_t* p;
  typename S::V load(int64_t i) const { return S::load_bf16(p + i); }
  void prefetch(int64_t i) const { __builtin_prefetch(p + i); }
  float at(int64_t i) const {
    const uint32_t bits = static_cast<uint32_t>(p[i]) << 16;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
  }
};

// Per-ISA shape of the float kernels, from the traits when they say (else AVX2's): C chains
// (accumulators) per output, tiles of R rows x T tokens, and the rows a one-token call runs
// side by side.
template <typename S>
constexpr int chains() {
  if constexpr (requires { S::kChains; }) return S::kChains;
  return 1;
}
template <typename S>
constexpr int tile_rows() {
  if constexpr (requires { S::kTileRows; }) return S::kTileRows;
  return 4;
}
template <typename S>
constexpr int decode_rows() {
  if constexpr (requires { S::kDecodeRows; }) return S::kDecodeRows;
  return tile_rows<S>();
}

// R weight rows dotted with T tokens, out[t * R + r]. Each output has C accumulators (chains<S>)
// that take the vector steps in turn (the leftover whole vectors go to the first), then are added
// in order, then one horizontal sum and the scalar tail: every output is computed by the same
// operations in the same order whatever R and T are, so a one-token call and any tile give
// bit-identical results — matmul's batch invariance. A step loads R row vectors (converted once)
// and T token vectors for R * T multiply-adds: AVX2's 4 x 3 gives 12 independent accumulators
// (enough to hide FMA latency) for 7 loads, where a row-by-row tile needed 16 loads per 12
// multiply-adds and was load-bound (tinyllama FFN, F16: 77 -> see docs/performance.md). AVX-512
// has twice the registers: 2 chains per output let a one-token call stream 2 rows instead of 4
// (decode's streams, see docs/performance.md) with 4 chains in flight.
template <typename S, typename L, int R, int T>
void dot_float_tile(const L* w, const float* x, int64_t x_stride, int64_t k, float* out) {
  using V = typename S::V;
  constexpr int N = S::kLanes, C = chains<S>();
  V a[R][T][C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int t = 0; t < T; ++t)
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) a[r][t][c] = S::zero();
  auto step = [&](int64_t i, int c) {
    V xv[T];
#pragma GCC unroll 3
    for (int t = 0; t < T; ++t) xv[t] = S::load(x + t * x_stride + i);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const V wv = w[r].load(i);
#pragma GCC unroll 3
      for (int t = 0; t < T; ++t) a[r][t][c] = S::fmadd(wv, xv[t], a[r][t][c]);
    }
  };
  int64_t i = 0;
#pragma GCC unroll 2  // ~3% on tinyllama's FFN (F16, 6 alternating runs: 121 vs 117 GFLOP/s)
  for (; i + C * N <= k; i += C * N) {
    if constexpr (T == 1) {  // one token streams its rows: fetch 1024 elements ahead
      // (AVX-512 F16 decode 28.2 -> 29.6 tok/s, AVX2 17.0 -> 18.2; 256 ahead was slower)
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) w[r].prefetch(i + 1024);
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) step(i + c * N, c);
  }
  for (; i + N <= k; i += N) step(i, 0);
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      V sum = a[r][t][0];
      for (int c = 1; c < C; ++c) sum = S::add(sum, a[r][t][c]);
      float s = S::reduce_add(sum);
      for (int64_t e = i; e < k; ++e) s += w[r].at(e) * x[t * x_stride + e];
      out[t * R + r] = s;
    }
}

// Tokens per tile: 3 (AVX2: 4 x 3 = 12 accumulators of 16 registers, plus the loads), or the
// traits' kTileTokens (at most 4).
template <typename S>
constexpr int tile_tokens() {
  if constexpr (requires { S::kTileTokens; }) return S::kTileTokens;
  return 3;
}

// Rows [r0, r1) against T tokens, in tiles of kTileRows rows and one row at a time for
// the rest.
template <typename S, typename L, typename Stored, int T, int R = tile_rows<S>()>
void rows_tile(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const float* x,
               int64_t x_stride, int64_t k, float* y, int64_t y_stride) {
  auto row = [&](int64_t r) { return L{reinterpret_cast<const Stored*>(w + r * row_bytes)}; };
  float out[R * T];
  int64_t r = r0;
  for (; r + R <= r1; r += R) {
    L rows[R];
    for (int j = 0; j < R; ++j) rows[j] = row(r + j);
    dot_float_tile<S, L, R, T>(rows, x, x_stride, k, out);
    for (int t = 0; t < T; ++t)
      for (int j = 0; j < R; ++j) y[t * y_stride + r + j] = out[t * R + j];
  }
  for (; r < r1; ++r) {
    const L one = row(r);
    dot_float_tile<S, L, 1, T>(&one, x, x_stride, k, out);
    for (int t = 0; t < T; ++t) y[t * y_stride + r] = out[t];
  }
}

// FloatRowsFn (matmul.h): tokens in blocks of 60 (20 tiles), and within each, rows in blocks of 32
// that stay in L2 while the block's token tiles pass over them. Weights come from memory once per
// token block, a token block's activations once per row block. With every token in one block,
// each 16-row block streamed all the tokens' activations — 11.5 MB per block for tinyllama's down
// projection at 512 tokens — and that matrix ran at 54-59 GFLOP/s against 69-76 blocked (one
// thread, 4 alternating runs; K = 2048, and 126 tokens, the same either way). Tinyllama F16 pp512:
// 46.4 -> 50.5 tok/s (medians of 8 alternating runs, 2-core EPYC).
template <typename S, typename L, typename Stored>
void dot_float_rows(const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x,
                    int64_t x_stride, int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  constexpr int kTileTokens = tile_tokens<S>();
  static_assert(kTileTokens >= 1 && kTileTokens <= 4);
  constexpr int64_t kTokenBlock = 20 * kTileTokens, kBlockRows = 32;
  for (int64_t j0 = 0; j0 < n_tok; j0 += kTokenBlock) {
    const int64_t j1 = std::min(n_tok, j0 + kTokenBlock);
    for (int64_t b0 = 0; b0 < n_rows; b0 += kBlockRows) {
      const int64_t b1 = std::min(n_rows, b0 + kBlockRows);
      for (int64_t t0 = j0; t0 < j1; t0 += kTileTokens) {
        const float* xt = x + t0 * x_stride;
        float* yt = y + t0 * y_stride;
        switch (std::min<int64_t>(j1 - t0, kTileTokens)) {
          case 4:
            if constexpr (kTileTokens >= 4)
              rows_tile<S, L, Stored, 4>(w, row_bytes, b0, b1, xt, x_stride, k, yt, y_stride);
            break;
          case 3:
            rows_tile<S, L, Stored, 3>(w, row_bytes, b0, b1, xt, x_stride, k, yt, y_stride);
            break;
          case 2:
            rows_tile<S, L, Stored, 2>(w, row_bytes, b0, b1, xt, x_stride, k, yt, y_stride);
            break;
          default:
            rows_tile<S, L, Stored, 1, decode_rows<S>()>(w, row_bytes, b0, b1, xt, x_stride, k, yt,
                                                         y_stride);
            break;
        }
      }
    }
  }
}

template <typename S, typename L, typename Stored>
float dot_row(const void* w, const float* x, int64_t k) {
  float out;
  const L row{static_cast<const Stored*>(w)};
  dot_float_tile<S, L, 1, 1>(&row, x, 0, k, &out);
  return out;
}

template <typename S, typename L, typename Stored>
void row_to_f32(const void* w, float* out, int64_t k) {
  const L row{static_cast<const Stored*>(w)};
  int64_t i = 0;
  for (; i + S::kLanes <= k; i += S::kLanes) S::store(out + i, row.load(i));
  for (; i < k; ++i) out[i] = row.at(i);
}

// The FloatRowsFn of S for a float dtype, nullptr for the others.
template <typename S>
FloatRowsFn float_rows_for(DType t) {
  switch (t) {
    case DType::kF32:
      return dot_float_rows<S, F32Row<S>, float>;
    case DType::kF16:
      return dot_float_rows<S, F16Row<S>, uint16_t>;
    case DType::kBF16:
      return dot_float_rows<S, BF16Row<S>, uint16_t>;
    default:
      return nullptr;
  }
}

}  // namespace rme::simd
