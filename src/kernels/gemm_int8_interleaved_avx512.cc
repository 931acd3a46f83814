// kernels: Q4_0 and Q8_0 matrices in the 16-row interleaved form (interleave.h) on AVX-512 VNNI —
// one kernel for decode, prefill and the batch-invariant mode, with the row kernel's
// (gemm_int8_avx512.cc) integers and float operations, hence its bits. Decode reads the groups in
// place, one linear stream; prefill unpacks a pass once into the packed tiles' words.
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

}  // namespace rme
