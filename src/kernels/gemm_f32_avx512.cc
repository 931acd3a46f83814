// kernels: prefill of F32 / F16 / BF16 weights as an f32 matrix product on repacked row panels
// (AVX-512).
//
// Weights are decoded and transposed per 16-row group into a thread-local panel [k][16 rows], so
// a tile is the textbook outer product: per column, one panel load per group and one broadcast
// per token feed kG x kN FMAs with no horizontal reductions. The panel is built once per group
// and reused by every token; the model file and decode are untouched.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/gemm_f32.h"
#include "kernels/prefetch.h"
#include "kernels/scratch.h"

namespace rme {
namespace {

constexpr int kGroup = 16;  // rows per panel group = f32 lanes

// dst[c * 16 + r] = src[r][c] for a 16 x 16 block.
inline void transpose16(const float* const* src, float* dst) {
  __m512 r[16], t[16];
  _Pragma("GCC unroll 16") for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src[i]);
  _Pragma("GCC unroll 8") for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // r[4g + j], 128-bit lane L: column 4L + j of rows 4g .. 4g + 3.
  _Pragma("GCC unroll 4") for (int g = 0; g < 4; ++g) {
    r[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  _Pragma("GCC unroll 4") for (int j = 0; j < 4; ++j) {
    const __m512 a02 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);  // lanes 0, 2 of groups 0, 1
    const __m512 b02 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    const __m512 a13 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);  // lanes 1, 3
    const __m512 b13 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
    _mm512_store_ps(dst + (0 + j) * 16, _mm512_shuffle_f32x4(a02, b02, 0x88));
    _mm512_store_ps(dst + (4 + j) * 16, _mm512_shuffle_f32x4(a13, b13, 0x88));
    _mm512_store_ps(dst + (8 + j) * 16, _mm512_shuffle_f32x4(a02, b02, 0xDD));
    _mm512_store_ps(dst + (12 + j) * 16, _mm512_shuffle_f32x4(a13, b13, 0xDD));
  }
}

// Decodes 16 rows to f32 (rows[16][k], scratch) and transposes them into panel[k][16].
void pack_group(RowToF32Fn to_f32, const uint8_t* w, size_t row_bytes, int64_t k, float* rows,
                float* panel) {
  for (int i = 0; i < kGroup; ++i) to_f32(w + i * row_bytes, rows + i * k, k);
  int64_t c = 0;
  for (; c + 16 <= k; c += 16) {
    const float* src[16];
    for (int i = 0; i < 16; ++i) src[i] = rows + i * k + c;
    transpose16(src, panel + c * kGroup);
  }
  for (; c < k; ++c)
    for (int i = 0; i < kGroup; ++i) panel[c * kGroup + i] = rows[i * k + c];
}

// kG groups (16 kG rows) x kN tokens; xp is the tile's tokens transposed, xp[i * kStride + c],
// so every broadcast comes from one stream at a constant offset. y[c * y_stride + 16 g + lane].
// Streams the next row pair's weights toward L2 while the tile computes: one line of `pf` per 4
// columns (pf_lines counts down), so the next pack finds them there instead of waiting on DRAM.
template <int kG, int kN, int kStride>
void tile(const float* const* panels, const float* xp, int64_t k, float* y, int64_t y_stride,
          Prefetch& pf) {
  __m512 acc[kG][kN];
  _Pragma("GCC unroll 4") for (int g = 0; g < kG; ++g)
      _Pragma("GCC unroll 16") for (int c = 0; c < kN; ++c) acc[g][c] = _mm512_setzero_ps();
  const float* p0 = panels[0];
  const float* p1 = panels[kG > 1 ? 1 : 0];
  const float* p2 = panels[kG > 2 ? 2 : 0];
  for (int64_t i = 0; i < k; ++i) {
    if ((i & 3) == 0) pf.next();
    __m512 wv[kG];
    wv[0] = _mm512_load_ps(p0 + i * kGroup);
    if constexpr (kG > 1) wv[1] = _mm512_load_ps(p1 + i * kGroup);
    if constexpr (kG > 2) wv[2] = _mm512_load_ps(p2 + i * kGroup);
    _Pragma("GCC unroll 16") for (int c = 0; c < kN; ++c) {
      const __m512 xb = _mm512_set1_ps(xp[i * kStride + c]);
      _Pragma("GCC unroll 4") for (int g = 0; g < kG; ++g) acc[g][c] =
          _mm512_fmadd_ps(wv[g], xb, acc[g][c]);
    }
  }
  _Pragma("GCC unroll 16") for (int c = 0; c < kN; ++c)
      _Pragma("GCC unroll 4") for (int g = 0; g < kG; ++g)
          _mm512_storeu_ps(y + c * y_stride + g * kGroup, acc[g][c]);
}

// 2 groups x 12 tokens: 24 accumulators, 2 loads + 12 broadcasts per 24 FMAs (the inner loop
// compiles to exactly that, no spills). kernels_bench BM_Matmul (4096 x 4096 F16, 64 tokens, 2
// threads): 2x12 330-365 GFLOP/s, 3x8 333-345, 4x6 310-326, 1x16 207-241.
constexpr int kTileTokens = 12;
constexpr int kTileGroups = 2;

static_assert(kTileGroups <= 3);

template <int kG, int kN>
void tile_upto(int n, const float* const* panels, const float* xp, int64_t k, float* y,
               int64_t y_stride, Prefetch& pf) {
  if constexpr (kN > 1)
    if (n < kN) return tile_upto<kG, kN - 1>(n, panels, xp, k, y, y_stride, pf);
  tile<kG, kN, kTileTokens>(panels, xp, k, y, y_stride, pf);
}

}  // namespace

int64_t gemm_f32_packed_floats(int64_t n_tok, int64_t k) {
  return (n_tok + kTileTokens - 1) / kTileTokens * kTileTokens * k;
}

int64_t gemm_f32_tile_tokens() { return kTileTokens; }

void gemm_f32_pack_tokens(const float* x, int64_t x_stride, int64_t t0, int64_t t1, int64_t k,
                          float* xp) {
  // xp[tile][i][c] = x[tile * kTileTokens + c][i]; 16 x 16 transposes (rows past the tile repeat
  // its first token and are dropped), so the writes are whole lines, not 48-byte strides.
  alignas(64) float tmp[16 * 16];
  for (int64_t tile0 = t0; tile0 < t1; tile0 += kTileTokens) {
    const int n = static_cast<int>(std::min<int64_t>(kTileTokens, t1 - tile0));
    float* dst = xp + tile0 * k;  // tile0 is a multiple of kTileTokens
    const float* src[16];
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
      for (int c = 0; c < 16; ++c) src[c] = x + (tile0 + (c < n ? c : 0)) * x_stride + i;
      transpose16(src, tmp);
      for (int j = 0; j < 16; ++j)
        std::memcpy(dst + (i + j) * kTileTokens, tmp + j * 16, sizeof(float) * kTileTokens);
    }
    for (; i < k; ++i)
      for (int c = 0; c < kTileTokens; ++c)
        dst[i * kTileTokens + c] = x[(tile0 + (c < n ? c : 0)) * x_stride + i];
  }
}

void gemm_f32_avx512(RowToF32Fn to_f32, RowDotF32Fn dot, const uint8_t* w, size_t row_bytes,
                     int64_t n_rows, int64_t k, const float* x, int64_t x_stride, const float* xp,
                     int64_t n_tok, float* y, int64_t y_stride) {
  constexpr int kG = kTileGroups;
  thread_local ScratchBuffer rows_buf, panel_buf;
  float* const rows = rows_buf.get<float>(kGroup * k);
  float* const panel = panel_buf.get<float>(kG * kGroup * k);
  int64_t r0 = 0;
  for (; r0 + kGroup <= n_rows;) {
    const int groups = r0 + kG * kGroup <= n_rows ? kG : 1;
    const int64_t next = r0 + groups * kGroup;  // the next row pair
    Prefetch pf = Prefetch::rows(w, row_bytes, next, std::min(n_rows, next + kG * kGroup),
                                 (n_tok + kTileTokens - 1) / kTileTokens * ((k + 3) / 4));
    const float* panels[kG];
    for (int g = 0; g < groups; ++g) {
      pack_group(to_f32, w + (r0 + g * kGroup) * row_bytes, row_bytes, k, rows,
                 panel + g * kGroup * k);
      panels[g] = panel + g * kGroup * k;
    }
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTileTokens) {
      const int n = static_cast<int>(std::min<int64_t>(kTileTokens, n_tok - t0));
      const float* xt = xp + (t0 / kTileTokens) * k * kTileTokens;
      float* yt = y + t0 * y_stride + r0;
      if (groups == kG)
        tile_upto<kG, kTileTokens>(n, panels, xt, k, yt, y_stride, pf);
      else
        tile_upto<1, kTileTokens>(n, panels, xt, k, yt, y_stride, pf);
    }
    r0 += groups * kGroup;
  }
  // Fewer than 16 rows left: decode each once, dot it with every token.
  for (; r0 < n_rows; ++r0) {
    to_f32(w + r0 * row_bytes, rows, k);
    for (int64_t t = 0; t < n_tok; ++t) y[t * y_stride + r0] = dot(rows, x + t * x_stride, k);
  }
}

}  // namespace rme
