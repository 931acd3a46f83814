// kernels: Q4_0 prefill on AVX2 as an integer matrix product. Each call repacks its rows into
// groups of 8 whose 4-byte words interleave (lane r of vector k holds elements 4k..4k+3 of row r),
// so one vpmaddubsw against a broadcast word of a token serves 8 rows, and a block's sums land one
// row per lane: no horizontal sums, and the int->float convert and the scale multiply-add happen
// once per 8 rows instead of once per row. The repack is amortized over every token of the call.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/dot_q8.h"

namespace rme {
namespace {

constexpr int kGroup = 8;  // rows per interleaved group: one per int32 lane
constexpr int kTile = 4;   // tokens per register tile (4 int16 sums + 4 f32 accumulators)
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

// Packs rows [0, n_valid) of one group (n_valid <= 8; missing rows get zero scales) into
// q[nb * 256] (block b: 8 vectors of 32 bytes, values 0..15 = w + 8) and d[nb * 8] (scales).
void pack_group(const uint8_t* w, size_t row_bytes, int n_valid, int64_t nb, uint8_t* q, float* d) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    __m256i v[kGroup];
    for (int r = 0; r < kGroup; ++r) {
      if (r >= n_valid) {
        v[r] = _mm256_set1_epi8(8);
        d[b * kGroup + r] = 0.0f;
        continue;
      }
      const Q4_0Block& blk = reinterpret_cast<const Q4_0Block*>(w + r * row_bytes)[b];
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.q));
      v[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), low4);
      d[b * kGroup + r] = _cvtsh_ss(blk.d);
    }
    transpose8x8(v);
    for (int k = 0; k < kWords; ++k)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + (b * kWords + k) * 32), v[k]);
  }
}

// out[t][r] = row r of the group . token t, for NT tokens. The token loops are unrolled and the
// word loop is not: unrolled both ways, GCC hoisted all 32 products of a block ahead of their
// sums and spilled (2.5x slower); this way the 4 + 4 accumulators stay in registers.
template <int NT>
void group_tile(const uint8_t* q, const float* d, int64_t nb, const Q8Activations* xs,
                float out[kTile][kGroup]) {
  const int8_t* xq[NT];
  const float *xd[NT], *xsum[NT];
  __m256 acc[NT];
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) {
    xq[t] = xs[t].q.data();
    xd[t] = xs[t].d.data();
    xsum[t] = xs[t].sum.data();
    acc[t] = _mm256_setzero_ps();
  }
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    // int16 lanes: 8 pair sums of at most 2 * 15 * 127 each, so 30480 at most: no overflow.
    __m256i s16[NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) s16[t] = _mm256_setzero_si256();
    const uint8_t* qb = q + b * kWords * 32;
#pragma GCC unroll 1
    for (int k = 0; k < kWords; ++k) {
      const __m256i wk = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qb + k * 32));
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) {
        int32_t word;
        std::memcpy(&word, xq[t] + b * 32 + k * 4, 4);
        s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(wk, _mm256_set1_epi32(word)));
      }
    }
    const __m256 dw = _mm256_loadu_ps(d + b * kGroup);
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      // The nibbles are w + 8: take 8 * sum(q) off before scaling.
      const __m256 isum = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16[t], ones));
      const __m256 v =
          _mm256_fnmadd_ps(_mm256_set1_ps(8.0f), _mm256_broadcast_ss(xsum[t] + b), isum);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(xd[t] + b)), v, acc[t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out[t], acc[t]);
}

void gemm_q4_0(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Q8Activations* xs,
               int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  const int64_t nb = k / 32;
  const int64_t group_bytes = nb * kWords * 32;
  const int64_t n_group = (n_rows + kGroup - 1) / kGroup;
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
      pack_group(w + r0 * row_bytes, row_bytes,
                 static_cast<int>(std::min<int64_t>(kGroup, n_rows - r0)), nb,
                 q.data() + g * group_bytes, d.data() + g * nb * kGroup);
    }
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTile) {
      const int nt = static_cast<int>(std::min<int64_t>(kTile, n_tok - t0));
      for (int64_t g = 0; g < ng; ++g) {
        const uint8_t* gq = q.data() + g * group_bytes;
        const float* gd = d.data() + g * nb * kGroup;
        switch (nt) {
          case 4:
            group_tile<4>(gq, gd, nb, xs + t0, out);
            break;
          case 3:
            group_tile<3>(gq, gd, nb, xs + t0, out);
            break;
          case 2:
            group_tile<2>(gq, gd, nb, xs + t0, out);
            break;
          default:
            group_tile<1>(gq, gd, nb, xs + t0, out);
            break;
        }
        const int64_t r0 = (g0 + g) * kGroup;
        const int rows = static_cast<int>(std::min<int64_t>(kGroup, n_rows - r0));
        for (int t = 0; t < nt; ++t)
          std::memcpy(y + (t0 + t) * y_stride + r0, out[t], rows * sizeof(float));
      }
    }
  }
}

}  // namespace

// Q4_0 only: Q8_0's signed weights need the sign trick per token (vpsignb) and int32 sums per
// word (its pair sums reach 32258), which this layout does not amortize; Q8_0 keeps sgemm.
GemmQ8Fn gemm_q4_avx2(DType weights) { return weights == DType::kQ4_0 ? gemm_q4_0 : nullptr; }

}  // namespace rme
