// kernels: AVX2 Q8_0 integer dot products (vpmaddubsw + vpmaddwd) for CPUs without AVX-512 VNNI,
// and the AVX2 activation quantizer. Q8_0 uses the sign trick (|w| as the unsigned operand, q
// carrying w's sign); vpmaddubsw cannot saturate: |w| <= 128 and |q| <= 127 give pair sums
// <= 32512. (AVX2 Q4_0 has its own kernel for every batch size: gemm_q4_avx2.cc.)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/dot_q8.h"
#include "kernels/simd_avx2.h"

namespace rme {
namespace {

// How far ahead of the current block the weights are prefetched (bytes). Rows are streamed one
// after another, so this reaches into the next row; the hardware prefetcher alone leaves a single
// stream per core short of bandwidth: tinyllama Q4_0 tg 15.6-15.9 -> 19.0-20.4 tok/s with 2048
// (2-core EPYC, same run, when this kernel also served Q4_0; 4096 measured the same).
constexpr int kPrefetchAhead = 2048;

// The 32 signed products of one block summed to 8 int32 lanes, as floats.
inline __m256 block_dot(__m256i w_unsigned, __m256i q) {
  const __m256i p16 = _mm256_maddubs_epi16(w_unsigned, q);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

// Lane j of s4 in all 8 lanes (one vpermps instead of a scalar convert-multiply-broadcast chain).
inline __m256 lane(__m256 s4x2, int j) {
  return _mm256_permutevar8x32_ps(s4x2, _mm256_set1_epi32(j));
}

// A block's weights decoded once and dotted with any number of tokens' blocks: the 8 int32 lanes
// of the block's products, as floats. |w| is kept and the sign multiplied into the activations.
struct Q8Weights {
  __m256i w, w_abs;
  explicit Q8Weights(const Q8_0Block& b)
      : w(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q))),
        w_abs(_mm256_sign_epi8(w, w)) {}
  __m256 dot(const int8_t* q) const {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    return block_dot(w_abs, _mm256_sign_epi8(x, w));
  }
};
// One weight row dotted with T tokens at once, the row's blocks decoded once for all of them.
// Every output is computed by the same operations in the same order whatever T is (block b goes
// to accumulator b % 2, four blocks' scales converted together, one horizontal sum at the end), so
// a token's result does not depend on how many tokens share the call: the batch invariance
// matmul relies on. Two accumulators per token keep up to 8 in registers for T = 4.
// One token's quantized activations (Q8Activations' buffers, or DotQ8Fn's raw pointers).
struct Q8Ref {
  const int8_t* q;
  const float* d;
  const float* sum;
};

template <int T>
inline void dot_tile(const Q8_0Block* b, int64_t nb, const Q8Ref* xs, float* out) {
  __m256 acc[T][2];
  for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  int64_t ib = 0;
  for (; ib + 4 <= nb; ib += 4) {
    for (size_t o = 0; o < 4 * sizeof(Q8_0Block); o += 64)  // the lines of four blocks, ahead
      _mm_prefetch(reinterpret_cast<const char*>(b + ib) + kPrefetchAhead + o, _MM_HINT_T0);
    const __m128i h =
        _mm_set_epi16(0, 0, 0, 0, static_cast<short>(b[ib + 3].d), static_cast<short>(b[ib + 2].d),
                      static_cast<short>(b[ib + 1].d), static_cast<short>(b[ib].d));
    const __m128 sw = _mm_cvtph_ps(h);
    __m256 s[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      s[t] = _mm256_castps128_ps256(_mm_mul_ps(sw, _mm_loadu_ps(xs[t].d + ib)));
    }
#pragma GCC unroll 4  // accumulators indexed by j & 1 and t must resolve to registers
    for (int j = 0; j < 4; ++j) {
      const Q8Weights w(b[ib + j]);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const int64_t blk = ib + j;
        acc[t][j & 1] =
            _mm256_fmadd_ps(w.dot(xs[t].q + blk * kQBlock), lane(s[t], j), acc[t][j & 1]);
      }
    }
  }
  for (; ib < nb; ++ib) {
    const Q8Weights w(b[ib]);
    const float dw = _cvtsh_ss(b[ib].d);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const float s = dw * xs[t].d[ib];
      __m256& a = acc[t][ib & 1];
      a = _mm256_fmadd_ps(w.dot(xs[t].q + ib * kQBlock), _mm256_set1_ps(s), a);
    }
  }
  for (int t = 0; t < T; ++t) out[t] = simd::Avx2::reduce_add(_mm256_add_ps(acc[t][0], acc[t][1]));
}

// The largest token tile: 4 tokens x 2 accumulators, the decoded block and the scales fit the 16
// ymm registers.
constexpr int kTileTokens = 4;

// Rows per block of the matrix product: 16 rows of an 11008-wide Q8_0 matrix are 187 KB, so a block
// stays in L2 while every tile of tokens passes over it, and a tile's activations (4 x up to 11 KB)
// stay in L1 across the block's rows.
constexpr int64_t kBlockRows = 16;

// rows x tokens: row blocks outer, tiles of up to four tokens, then the block's rows; each row's
// blocks are decoded once per tile. Weights come from memory once per call.
void gemm_avx2(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8Activations* xs,
               int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  const int64_t nb = k / kQBlock;
  for (int64_t r0 = 0; r0 < n_rows; r0 += kBlockRows) {
    const int64_t r1 = std::min(n_rows, r0 + kBlockRows);
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTileTokens) {
      Q8Ref tile[kTileTokens];
      const int n = static_cast<int>(std::min<int64_t>(kTileTokens, n_tok - t0));
      for (int t = 0; t < n; ++t)
        tile[t] = {xs[t0 + t].q.data(), xs[t0 + t].d.data(), xs[t0 + t].sum.data()};
      for (int64_t r = r0; r < r1; ++r) {
        const auto* b = reinterpret_cast<const Q8_0Block*>(w + r * row_bytes);
        float out[kTileTokens];
        switch (n) {
          case 4:
            dot_tile<4>(b, nb, tile, out);
            break;
          case 3:
            dot_tile<3>(b, nb, tile, out);
            break;
          case 2:
            dot_tile<2>(b, nb, tile, out);
            break;
          default:
            dot_tile<1>(b, nb, tile, out);
            break;
        }
        for (int t = 0; t < n; ++t) y[(t0 + t) * y_stride + r] = out[t];
      }
    }
  }
}

// The one-token kernel is the tile kernel with one token (DotQ8Fn's raw pointers wrapped).
float dot_avx2(const void* w, const int8_t* q, const float* d, const float* sum, int64_t k) {
  const Q8Ref x{q, d, sum};
  float out;
  dot_tile<1>(static_cast<const Q8_0Block*>(w), k / kQBlock, &x, &out);
  return out;
}

}  // namespace

// Q8_0 only (AVX2 Q4_0: gemm_q4_avx2.cc).
DotQ8Fn dot_q8_avx2(DType t) { return t == DType::kQ8_0 ? dot_avx2 : nullptr; }
GemmQ8Fn gemm_q8_avx2(DType t) { return t == DType::kQ8_0 ? gemm_avx2 : nullptr; }

// Bit-identical to Q8Activations::quantize_ref: the block maximum is exact in any order, the
// scale and its inverse are computed in scalar like the reference, x * inv is one IEEE multiply,
// and vcvtps2dq rounds to nearest even like lrintf under the default rounding mode.
void quantize_q8_avx2(const float* x, int64_t k, int8_t* q, float* d, float* sum) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < k / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
    __m256 m =
        _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
                      _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    d[b] = amax / 127.0f;
    if (!(inv <= 3.4e38f)) {  // amax tiny: x * inf is +-inf or NaN, which the reference's
      std::memset(q + b * kQBlock, 0, kQBlock);  // (int)lrintf turns into 0 (x86: the 64-bit
      sum[b] = 0.0f;                             // "indefinite" value's low half)
      continue;
    }
    const __m256 vi = _mm256_set1_ps(inv);
    __m256i i32[4];
    for (int i = 0; i < 4; ++i) i32[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], vi));
    const __m256i s =
        _mm256_add_epi32(_mm256_add_epi32(i32[0], i32[1]), _mm256_add_epi32(i32[2], i32[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    sum[b] = static_cast<float>(_mm_cvtsi128_si32(s4));
    const __m256i p16 =
        _mm256_packs_epi16(_mm256_packs_epi32(i32[0], i32[1]), _mm256_packs_epi32(i32[2], i32[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kQBlock),
                        _mm256_permutevar8x32_epi32(p16, order));
  }
}

}  // namespace rme
