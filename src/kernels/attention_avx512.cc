// kernels: one query head's attention over a paged K/V cache with AVX-512 — the query held in
// registers, a vectorized exp, and the weighted sum of values accumulated in registers.
//
// Why: the scalar form pays a function call and a horizontal reduction per position for the
// scores and a load/store of the output per position for the values; at 512-token prompts that
// made attention ~40% of prefill though it is ~2% of the FLOPs.
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "kernels/ops.h"

namespace rme {
namespace {

// e^x for x <= 0 (callers subtract the maximum): x = n ln2 + r, |r| <= ln2/2, e^r by its degree-6
// Taylor polynomial (relative error < 2e-7), times 2^n via scalef.
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);  // ln2 split hi + lo
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

template <int kNd>  // head_dim = 16 kNd
void attend(const float* q, const float* k, const float* v, const int* blocks, int64_t block_size,
            int64_t block_stride, int64_t stride, int64_t n_kv, float* scratch, float* out) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(16 * kNd));
  __m512 qv[kNd];
  _Pragma("GCC unroll 8") for (int d = 0; d < kNd; ++d) qv[d] = _mm512_loadu_ps(q + 16 * d);

  // Scores, and their maximum.
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0, t = 0; t < n_kv; ++b) {
    const float* kb = k + blocks[b] * block_stride;
    for (int64_t r = 0; r < block_size && t < n_kv; ++r, ++t) {
      const float* kt = kb + r * stride;
      __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kt));
      _Pragma("GCC unroll 8") for (int d = 1; d < kNd; ++d) acc =
          _mm512_fmadd_ps(qv[d], _mm512_loadu_ps(kt + 16 * d), acc);
      const float s = _mm512_reduce_add_ps(acc) * scale;
      scratch[t] = s;
      mx = s > mx ? s : mx;
    }
  }

  // Unnormalized probabilities and their sum.
  const __m512 vmx = _mm512_set1_ps(mx);
  __m512 vsum = _mm512_setzero_ps();
  int64_t t = 0;
  for (; t + 16 <= n_kv; t += 16) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(scratch + t), vmx));
    _mm512_storeu_ps(scratch + t, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  if (t < n_kv) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n_kv - t)) - 1);
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scratch + t), vmx));
    _mm512_mask_storeu_ps(scratch + t, m, e);
    vsum = _mm512_add_ps(vsum, _mm512_maskz_mov_ps(m, e));
  }
  const float inv = 1.0f / _mm512_reduce_add_ps(vsum);

  // out = sum_t p_t v_t / sum_t p_t, accumulated in registers.
  __m512 acc[kNd];
  _Pragma("GCC unroll 8") for (int d = 0; d < kNd; ++d) acc[d] = _mm512_setzero_ps();
  t = 0;
  for (int64_t b = 0; t < n_kv; ++b) {
    const float* vb = v + blocks[b] * block_stride;
    for (int64_t r = 0; r < block_size && t < n_kv; ++r, ++t) {
      const float* vt = vb + r * stride;
      const __m512 a = _mm512_set1_ps(scratch[t]);
      _Pragma("GCC unroll 8") for (int d = 0; d < kNd; ++d) acc[d] =
          _mm512_fmadd_ps(a, _mm512_loadu_ps(vt + 16 * d), acc[d]);
    }
  }
  const __m512 vinv = _mm512_set1_ps(inv);
  _Pragma("GCC unroll 8") for (int d = 0; d < kNd; ++d)
      _mm512_storeu_ps(out + 16 * d, _mm512_mul_ps(acc[d], vinv));
}

// Lane i of the result, for i < 4 (G = 4) or i in {0..3, 8..11} (G = 8, heads 4..7 at 8..11)
// = the sum of v[head]'s 16 lanes, by a fixed tree: pairs within 128-bit lanes (unpack), quads
// (shuffle), then across the 128-bit lanes (f32x4 shuffles).
template <int G>
inline __m512 hsum_heads(const __m512* v) {
  __m512 u[G / 2], w[G / 4];
  _Pragma("GCC unroll 4") for (int j = 0; j < G / 2; ++j) u[j] = _mm512_add_ps(
      _mm512_unpacklo_ps(v[2 * j], v[2 * j + 1]), _mm512_unpackhi_ps(v[2 * j], v[2 * j + 1]));
  _Pragma("GCC unroll 2") for (int j = 0; j < G / 4; ++j) w[j] =
      _mm512_add_ps(_mm512_shuffle_ps(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                    _mm512_shuffle_ps(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  if constexpr (G == 8) {
    const __m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(2, 3, 0, 1)));
  } else {
    const __m512 x = _mm512_add_ps(w[0], _mm512_shuffle_f32x4(w[0], w[0], _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(2, 3, 0, 1)));
  }
}

// G query heads sharing one K/V head (GQA): each cache row is loaded once for the group, where
// per-head calls loaded it G times (prefill attention was ~20% of tinyllama Q4_0 pp512's compute,
// bound by those loads). Scores: G dot products per row, their horizontal sums by one tree;
// softmax per head as attend's; values: HV heads at a time accumulate in registers.
template <int kNd, int G>
void attend_group(const float* q, const float* k, const float* v, const int* blocks,
                  int64_t block_size, int64_t block_stride, int64_t stride, int64_t n_kv,
                  float* scratch, float* out) {
  constexpr int D = 16 * kNd, HV = 16 / kNd < G ? 16 / kNd : G;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  float mx[G];
  for (int g = 0; g < G; ++g) mx[g] = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0, t = 0; t < n_kv; ++b) {
    const float* kb = k + blocks[b] * block_stride;
    for (int64_t r = 0; r < block_size && t < n_kv; ++r, ++t) {
      const float* kt = kb + r * stride;
      __m512 kv[kNd], acc[G];
      _Pragma("GCC unroll 8") for (int d = 0; d < kNd; ++d) kv[d] = _mm512_loadu_ps(kt + 16 * d);
      _Pragma("GCC unroll 8") for (int g = 0; g < G; ++g) {
        acc[g] = _mm512_mul_ps(_mm512_loadu_ps(q + g * D), kv[0]);
        _Pragma("GCC unroll 8") for (int d = 1; d < kNd; ++d) acc[g] =
            _mm512_fmadd_ps(_mm512_loadu_ps(q + g * D + 16 * d), kv[d], acc[g]);
      }
      alignas(64) float s[16];
      _mm512_store_ps(s, _mm512_mul_ps(hsum_heads<G>(acc), _mm512_set1_ps(scale)));
      _Pragma("GCC unroll 8") for (int g = 0; g < G; ++g) {
        const float sg = s[g < 4 ? g : g + 4];
        scratch[g * n_kv + t] = sg;
        mx[g] = sg > mx[g] ? sg : mx[g];
      }
    }
  }
  float inv[G];
  for (int g = 0; g < G; ++g) {
    float* sc = scratch + g * n_kv;
    const __m512 vmx = _mm512_set1_ps(mx[g]);
    __m512 vsum = _mm512_setzero_ps();
    int64_t t = 0;
    for (; t + 16 <= n_kv; t += 16) {
      const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(sc + t), vmx));
      _mm512_storeu_ps(sc + t, e);
      vsum = _mm512_add_ps(vsum, e);
    }
    if (t < n_kv) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n_kv - t)) - 1);
      const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, sc + t), vmx));
      _mm512_mask_storeu_ps(sc + t, m, e);
      vsum = _mm512_add_ps(vsum, _mm512_maskz_mov_ps(m, e));
    }
    inv[g] = 1.0f / _mm512_reduce_add_ps(vsum);
  }
  for (int g0 = 0; g0 < G; g0 += HV) {
    __m512 acc[HV][kNd];
    _Pragma("GCC unroll 8") for (int h = 0; h < HV; ++h)
        _Pragma("GCC unroll 8") for (int d = 0; d < kNd; ++d) acc[h][d] = _mm512_setzero_ps();
    for (int64_t b = 0, t = 0; t < n_kv; ++b) {
      const float* vb = v + blocks[b] * block_stride;
      for (int64_t r = 0; r < block_size && t < n_kv; ++r, ++t) {
        const float* vt = vb + r * stride;
        __m512 vv[kNd];
        _Pragma("GCC unroll 8") for (int d = 0; d < kNd; ++d) vv[d] = _mm512_loadu_ps(vt + 16 * d);
        _Pragma("GCC unroll 8") for (int h = 0; h < HV; ++h) {
          const __m512 a = _mm512_set1_ps(scratch[(g0 + h) * n_kv + t]);
          _Pragma("GCC unroll 8") for (int d = 0; d < kNd; ++d) acc[h][d] =
              _mm512_fmadd_ps(a, vv[d], acc[h][d]);
        }
      }
    }
    _Pragma("GCC unroll 8") for (int h = 0; h < HV; ++h) {
      const __m512 vinv = _mm512_set1_ps(inv[g0 + h]);
      _Pragma("GCC unroll 8") for (int d = 0; d < kNd; ++d)
          _mm512_storeu_ps(out + (g0 + h) * D + 16 * d, _mm512_mul_ps(acc[h][d], vinv));
    }
  }
}

}  // namespace

bool attention_group_paged_avx512(const float* q, int64_t n_group, const float* k, const float* v,
                                  const int* blocks, int64_t block_size, int64_t block_stride,
                                  int64_t stride, int64_t n_kv, int64_t head_dim, float* scratch,
                                  float* out) {
  using Fn = void (*)(const float*, const float*, const float*, const int*, int64_t, int64_t,
                      int64_t, int64_t, float*, float*);
  Fn fn = nullptr;
  if (head_dim == 64)
    fn = n_group == 8 ? attend_group<4, 8> : n_group == 4 ? attend_group<4, 4> : nullptr;
  if (head_dim == 128)
    fn = n_group == 8 ? attend_group<8, 8> : n_group == 4 ? attend_group<8, 4> : nullptr;
  if (fn == nullptr || n_kv <= 0) return false;
  fn(q, k, v, blocks, block_size, block_stride, stride, n_kv, scratch, out);
  return true;
}

bool attention_head_paged_avx512(const float* q, const float* k, const float* v, const int* blocks,
                                 int64_t block_size, int64_t block_stride, int64_t stride,
                                 int64_t n_kv, int64_t head_dim, float* scratch, float* out) {
  using Fn = void (*)(const float*, const float*, const float*, const int*, int64_t, int64_t,
                      int64_t, int64_t, float*, float*);
  static constexpr Fn kByDims[] = {nullptr,   attend<1>, attend<2>, attend<3>, attend<4>,
                                   attend<5>, attend<6>, attend<7>, attend<8>};
  if (n_kv <= 0 || head_dim % 16 != 0 || head_dim > 128) return false;
  kByDims[head_dim / 16](q, k, v, blocks, block_size, block_stride, stride, n_kv, scratch, out);
  return true;
}

}  // namespace rme
