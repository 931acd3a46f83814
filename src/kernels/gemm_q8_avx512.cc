// kernels: prefill of Q4_0 / Q8_0 weights as an integer matrix product on repacked row panels
// (AVX-512 VNNI).
//
// Why repack: vpdpbusd multiplies 4 bytes per 32-bit lane. If a vector holds 16 *rows* at the same
// 4 columns, one vpdpbusd against a broadcast of 4 token bytes yields 16 row partial sums with no
// horizontal reduction, and a block's 8 vpdpbusd accumulate in integers before one convert and one
// FMA apply the 16 rows' scales at once. Dotting rows against tokens directly instead costs a
// convert, a scale multiply and an FMA per (row, token, block pair) — about 2.5x the instructions.
// Weights are repacked per 16-row group into a thread-local panel on the fly (read once, reused
// for every token), so the model file and decode are untouched.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/dot_q8.h"
#include "kernels/prefetch.h"
#include "kernels/scratch.h"

namespace rme {

DotQ8Fn dot_q8_vnni(DType weights);  // dot_q8_vnni.cc

namespace {

constexpr int kGroup = 16;                       // rows per panel group = int32 lanes
constexpr int64_t kQuadBytes = kGroup * 4;       // one column quad of a group: 64 bytes
constexpr int64_t kBlockBytes = 8 * kQuadBytes;  // one 32-column block of a group: 512 bytes

// One group's panel: for block b and quad j, 64 bytes = 16 rows x 4 unsigned weight bytes
// (Q4_0 nibbles 0..15; Q8_0 bytes with the sign bit flipped, i.e. w + 128) at columns
// 32b + 4j .. 32b + 4j + 3; plus the 16 rows' f32 scales per block.
template <bool kQ4>
void pack_group(const uint8_t* w, size_t row_bytes, int64_t nb, uint8_t* panel, float* scales) {
  alignas(64) uint8_t unpacked[kQBlock];
  for (int i = 0; i < kGroup; ++i) {
    const uint8_t* row = w + i * row_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      if constexpr (kQ4) {
        const auto& blk = reinterpret_cast<const Q4_0Block*>(row)[b];
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.q));
        const __m128i mask = _mm_set1_epi8(0x0f);
        _mm_store_si128(reinterpret_cast<__m128i*>(unpacked), _mm_and_si128(bytes, mask));
        _mm_store_si128(reinterpret_cast<__m128i*>(unpacked + 16),
                        _mm_and_si128(_mm_srli_epi16(bytes, 4), mask));
        scales[b * kGroup + i] = _cvtsh_ss(blk.d);
      } else {
        const auto& blk = reinterpret_cast<const Q8_0Block*>(row)[b];
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.q));
        _mm256_store_si256(reinterpret_cast<__m256i*>(unpacked),
                           _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80))));
        scales[b * kGroup + i] = _cvtsh_ss(blk.d);
      }
      uint8_t* dst = panel + b * kBlockBytes + i * 4;
      for (int j = 0; j < 8; ++j) std::memcpy(dst + j * kQuadBytes, unpacked + 4 * j, 4);
    }
  }
}

// Per-token data the tile reads: quantized bytes, block scales and the weight offset folded in
// as an integer start value (-offset * block sum of q).
struct TokenRef {
  const int8_t* q;
  const float* d;
  const int32_t* start;
};

// kG groups (16 kG rows) x kN tokens. pf streams the next row pair's weights toward L2, one line
// per block (see prefetch.h). Per column quad: kG panel loads, kN 4-byte broadcasts,
// kG*kN vpdpbusd; per block: one convert and one FMA (rows' scales x token scale) per pair.
template <int kG, int kN>
void tile(const uint8_t* const* panels, const float* const* scales, const TokenRef* tok, int64_t nb,
          float* y, int64_t y_stride, Prefetch& pf) {
  __m512 acc[kG][kN];
  _Pragma("GCC unroll 4") for (int g = 0; g < kG; ++g)
      _Pragma("GCC unroll 8") for (int c = 0; c < kN; ++c) acc[g][c] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    pf.next();
    __m512i isum[kG][kN];
    _Pragma("GCC unroll 8") for (int c = 0; c < kN; ++c) {
      const __m512i s = _mm512_set1_epi32(tok[c].start[b]);
      _Pragma("GCC unroll 4") for (int g = 0; g < kG; ++g) isum[g][c] = s;
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; ++j) {
      __m512i wv[kG];
      _Pragma("GCC unroll 4") for (int g = 0; g < kG; ++g) wv[g] =
          _mm512_load_si512(panels[g] + b * kBlockBytes + j * kQuadBytes);
      _Pragma("GCC unroll 8") for (int c = 0; c < kN; ++c) {
        int32_t quad;
        std::memcpy(&quad, tok[c].q + b * kQBlock + 4 * j, 4);
        const __m512i xv = _mm512_set1_epi32(quad);
        _Pragma("GCC unroll 4") for (int g = 0; g < kG; ++g) isum[g][c] =
            _mm512_dpbusd_epi32(isum[g][c], wv[g], xv);
      }
    }
    _Pragma("GCC unroll 4") for (int g = 0; g < kG; ++g) {
      const __m512 ws = _mm512_load_ps(scales[g] + b * kGroup);
      _Pragma("GCC unroll 8") for (int c = 0; c < kN; ++c) acc[g][c] =
          _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[g][c]),
                          _mm512_mul_ps(ws, _mm512_set1_ps(tok[c].d[b])), acc[g][c]);
    }
  }
  _Pragma("GCC unroll 8") for (int c = 0; c < kN; ++c)
      _Pragma("GCC unroll 4") for (int g = 0; g < kG; ++g)
          _mm512_storeu_ps(y + c * y_stride + g * kGroup, acc[g][c]);
}

// 2 groups x 4 tokens: 8 vpdpbusd per 6 loads, 16 + 16 accumulators. On kernels_bench BM_Matmul
// (4096 x 4096, 64 tokens, 2 threads) 2x4, 2x6 and 3x4 measured alike (Q4_0 690-780 GOP/s),
// 1x8 and 4x3 lower, 1x12 spills (280).
constexpr int kTileTokens = 4;
constexpr int kTileGroups = 2;

// A tile of n <= kN tokens (the last one of a row panel may be partial).
template <int kG, int kN>
void tile_upto(int n, const uint8_t* const* panels, const float* const* scales, const TokenRef* tok,
               int64_t nb, float* y, int64_t y_stride, Prefetch& pf) {
  if constexpr (kN > 1)
    if (n < kN) return tile_upto<kG, kN - 1>(n, panels, scales, tok, nb, y, y_stride, pf);
  tile<kG, kN>(panels, scales, tok, nb, y, y_stride, pf);
}

template <bool kQ4>
void gemm_panel(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8Activations* xs,
                int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  constexpr int32_t kOffset = kQ4 ? 8 : 128;
  const int64_t nb = k / kQBlock;
  thread_local std::vector<int32_t> start;
  thread_local std::vector<TokenRef> toks;
  thread_local ScratchBuffer panel_buf, scale_buf;
  if (static_cast<int64_t>(start.size()) < n_tok * nb) start.resize(n_tok * nb);
  toks.resize(n_tok);
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t b = 0; b < nb; ++b)
      start[t * nb + b] = -kOffset * static_cast<int32_t>(xs[t].sum[b]);
    toks[t] = TokenRef{xs[t].q.data(), xs[t].d.data(), start.data() + t * nb};
  }
  constexpr int kG = kTileGroups;
  uint8_t* const panel = panel_buf.get<uint8_t>(kG * nb * kBlockBytes);
  float* const scale = scale_buf.get<float>(kG * nb * kGroup);
  int64_t r0 = 0;
  for (; r0 + kGroup <= n_rows;) {
    const int groups = r0 + kG * kGroup <= n_rows ? kG : 1;
    const int64_t next = r0 + groups * kGroup;  // the next row pair
    Prefetch pf = Prefetch::rows(w, row_bytes, next, std::min(n_rows, next + kG * kGroup),
                                 (n_tok + kTileTokens - 1) / kTileTokens * nb);
    const uint8_t* panels[kG];
    const float* scales[kG];
    for (int g = 0; g < groups; ++g) {
      uint8_t* p = panel + g * nb * kBlockBytes;
      float* s = scale + g * nb * kGroup;
      pack_group<kQ4>(w + (r0 + g * kGroup) * row_bytes, row_bytes, nb, p, s);
      panels[g] = p;
      scales[g] = s;
    }
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTileTokens) {
      const int n = static_cast<int>(std::min<int64_t>(kTileTokens, n_tok - t0));
      float* yt = y + t0 * y_stride + r0;
      if (groups == kG)
        tile_upto<kG, kTileTokens>(n, panels, scales, toks.data() + t0, nb, yt, y_stride, pf);
      else
        tile_upto<1, kTileTokens>(n, panels, scales, toks.data() + t0, nb, yt, y_stride, pf);
    }
    r0 += groups * kGroup;
  }
  // Fewer than 16 rows left: one integer dot product per (row, token).
  const DotQ8Fn gemv = dot_q8_vnni(kQ4 ? DType::kQ4_0 : DType::kQ8_0);
  for (; r0 < n_rows; ++r0)
    for (int64_t t = 0; t < n_tok; ++t) {
      const Q8Activations& x = xs[t];
      y[t * y_stride + r0] = gemv(w + r0 * row_bytes, x.q.data(), x.d.data(), x.sum.data(), k);
    }
}

}  // namespace

GemmQ8Fn gemm_q8_vnni(DType t) {
  return t == DType::kQ8_0 ? gemm_panel<false> : t == DType::kQ4_0 ? gemm_panel<true> : nullptr;
}

}  // namespace rme
