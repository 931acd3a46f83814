// kernels: F16 matrices in the 16-row interleaved layout (interleave.h: element i of a group is
// 16 f16s, lane r = row r) against f32 activations — AVX-512 (F16C), compiled with its flags and
// only called on CPUs that have them (float_groups checks the config's ISA).
#include <immintrin.h>

#include "kernels/matmul.h"

namespace rme {
namespace {

// NG groups x T tokens: each element loads NG weight vectors (16 rows each, converted once) and
// broadcasts each token's activation, NG x T multiply-adds whose lane r accumulates row r's sum
// for one token. One accumulator per output, taking the elements in order: every output is
// computed by the same operations whatever NG and T (batch-invariant), with no horizontal sums.
// The rows' tiles (float_dot_impl.h) load 7 vectors per 24 multiply-adds and reduce each output
// across lanes; here 4 weight vectors and 6 broadcasts feed 24 (tinyllama F16 in
// docs/performance.md).
template <int NG, int T>
void tile(const uint8_t* w, size_t group_bytes, const float* x, int64_t x_stride, int64_t k,
          float* y, int64_t y_stride) {
  __m512 a[NG * T];
#pragma GCC unroll 32
  for (int j = 0; j < NG * T; ++j) a[j] = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    __m512 wv[NG];
#pragma GCC unroll 4
    for (int g = 0; g < NG; ++g)
      wv[g] = _mm512_cvtph_ps(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * group_bytes + i * 32)));
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512 b = _mm512_set1_ps(x[t * x_stride + i]);
#pragma GCC unroll 4
      for (int g = 0; g < NG; ++g) a[g * T + t] = _mm512_fmadd_ps(wv[g], b, a[g * T + t]);
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < NG; ++g)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + t * y_stride + g * 16, a[g * T + t]);
}

// Tokens in tiles of 6 (24 accumulators for four groups), the rest in 4, 2, 1.
template <int NG>
void all_tokens(const uint8_t* w, size_t group_bytes, const float* x, int64_t x_stride,
                int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  int64_t t = 0;
  auto run = [&]<int T>() {
    tile<NG, T>(w, group_bytes, x + t * x_stride, x_stride, k, y + t * y_stride, y_stride);
    t += T;
  };
  while (n_tok - t >= 6) run.template operator()<6>();
  if (n_tok - t >= 4) run.template operator()<4>();
  if (n_tok - t >= 2) run.template operator()<2>();
  if (n_tok - t >= 1) run.template operator()<1>();
}

}  // namespace

// Whole groups only (n_rows a multiple of 16): four groups at a time (64 rows, 256 KB of
// tinyllama's gate rows, kept in L2 while every token passes), then two, then one.
void f16_groups_avx512(const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x,
                       int64_t x_stride, int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  const size_t group_bytes = row_bytes * 16;
  const int64_t n_group = n_rows / 16;
  int64_t g = 0;
  for (; g + 4 <= n_group; g += 4)
    all_tokens<4>(w + g * group_bytes, group_bytes, x, x_stride, n_tok, k, y + g * 16, y_stride);
  for (; g + 2 <= n_group; g += 2)
    all_tokens<2>(w + g * group_bytes, group_bytes, x, x_stride, n_tok, k, y + g * 16, y_stride);
  if (g < n_group)
    all_tokens<1>(w + g * group_bytes, group_bytes, x, x_stride, n_tok, k, y + g * 16, y_stride);
}

}  // namespace rme
