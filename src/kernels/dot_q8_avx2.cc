// kernels: AVX2 integer dot products (vpmaddubsw + vpmaddwd) for CPUs without AVX-512 VNNI, and
// the AVX2 activation quantizer. Q8_0 uses the sign trick (|w| as the unsigned operand, q carrying
// w's sign); Q4_0 keeps its nibbles unsigned (0..15 = w + 8) and takes the offset off through the
// activation block sums. vpmaddubsw cannot saturate here: |w| <= 128 and |q| <= 127 give pair sums
// <= 32512 (Q8_0), 15 * 127 * 2 = 3810 (Q4_0).
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/dot_q8.h"

namespace rme {
namespace {

// How far ahead of the current block the weights are prefetched (bytes). Rows are streamed one
// after another, so this reaches into the next row; the hardware prefetcher alone leaves a single
// stream per core short of bandwidth: tinyllama Q4_0 tg 15.6-15.9 -> 19.0-20.4 tok/s with 2048
// (2-core EPYC, same run; 4096 measured the same).
constexpr int kPrefetchAhead = 2048;

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

// The 32 signed products of one block summed to 8 int32 lanes, as floats.
inline __m256 block_dot(__m256i w_unsigned, __m256i q) {
  const __m256i p16 = _mm256_maddubs_epi16(w_unsigned, q);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

inline __m256 q8_block(const Q8_0Block& b, const int8_t* q) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q));
  const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
  return block_dot(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

// Q4_0 nibbles in element order (byte i: element i low, element i + 16 high), as 0..15.
inline __m256i q4_nibbles(const Q4_0Block& b) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// 4 blocks' d_w * d_x: the weight scales (f16, 18 or 34 bytes apart) converted at once.
template <typename Block>
inline __m128 scales4(const Block* b, const float* d) {
  const __m128i h =
      _mm_set_epi16(0, 0, 0, 0, static_cast<short>(b[3].d), static_cast<short>(b[2].d),
                    static_cast<short>(b[1].d), static_cast<short>(b[0].d));
  return _mm_mul_ps(_mm_cvtph_ps(h), _mm_loadu_ps(d));
}

// Lane j of s4 in all 8 lanes (one vpermps instead of a scalar convert-multiply-broadcast chain).
inline __m256 lane(__m256 s4x2, int j) {
  return _mm256_permutevar8x32_ps(s4x2, _mm256_set1_epi32(j));
}

// sum over blocks of s_b * dot_b(w, q): four blocks per iteration, their scales converted
// together; the scalar tail block by block. BlockDot(b, q) gives a block's 8 lanes of products.
template <typename Block, typename BlockDot>
inline float dot_blocks(const Block* b, const int8_t* q, const float* d, int64_t nb,
                        BlockDot block_dot8) {
  // Four accumulators: one FMA chain per block of the four, so the FMA latency is not the limit.
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  int64_t ib = 0;
  for (; ib + 4 <= nb; ib += 4) {
    for (size_t o = 0; o < 4 * sizeof(Block); o += 64)  // the lines of four blocks, ahead
      _mm_prefetch(reinterpret_cast<const char*>(b + ib) + kPrefetchAhead + o, _MM_HINT_T0);
    const __m256 s = _mm256_castps128_ps256(scales4(b + ib, d + ib));
    acc0 = _mm256_fmadd_ps(block_dot8(b[ib], q + ib * kQBlock), lane(s, 0), acc0);
    acc1 = _mm256_fmadd_ps(block_dot8(b[ib + 1], q + (ib + 1) * kQBlock), lane(s, 1), acc1);
    acc2 = _mm256_fmadd_ps(block_dot8(b[ib + 2], q + (ib + 2) * kQBlock), lane(s, 2), acc2);
    acc3 = _mm256_fmadd_ps(block_dot8(b[ib + 3], q + (ib + 3) * kQBlock), lane(s, 3), acc3);
  }
  for (; ib < nb; ++ib)
    acc0 = _mm256_fmadd_ps(block_dot8(b[ib], q + ib * kQBlock),
                           _mm256_set1_ps(_cvtsh_ss(b[ib].d) * d[ib]), acc0);
  return hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

float dot_q8_0_avx2(const void* w, const int8_t* q, const float* d, const float*, int64_t k) {
  return dot_blocks(static_cast<const Q8_0Block*>(w), q, d, k / kQBlock, q8_block);
}

float dot_q4_0_avx2(const void* w, const int8_t* q, const float* d, const float* sum, int64_t k) {
  const auto* b = static_cast<const Q4_0Block*>(w);
  const int64_t nb = k / kQBlock;
  auto nibbles_dot = [](const Q4_0Block& blk, const int8_t* x) {
    return block_dot(q4_nibbles(blk), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
  };
  // The +8 of every nibble: 8 * sum_b s_b * sum(q_b), four blocks at a time.
  __m128 off = _mm_setzero_ps();
  int64_t ib = 0;
  for (; ib + 4 <= nb; ib += 4)
    off = _mm_fmadd_ps(scales4(b + ib, d + ib), _mm_loadu_ps(sum + ib), off);
  float tail = 0;
  for (; ib < nb; ++ib) tail += _cvtsh_ss(b[ib].d) * d[ib] * sum[ib];
  off = _mm_add_ps(off, _mm_movehl_ps(off, off));
  const float offset = _mm_cvtss_f32(_mm_add_ss(off, _mm_movehdup_ps(off))) + tail;
  return dot_blocks(b, q, d, nb, nibbles_dot) - 8.0f * offset;
}

}  // namespace

DotQ8Fn dot_q8_avx2(DType t) {
  return t == DType::kQ8_0 ? dot_q8_0_avx2 : t == DType::kQ4_0 ? dot_q4_0_avx2 : nullptr;
}

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
