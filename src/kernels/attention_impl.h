// kernels: one query head's attention over a paged K/V cache, written once against vector traits S
// (simd_*.h) and compiled per ISA (attention_avx2.cc; NEON next). The query is held in registers,
// the exponentials are vectorized, and the weighted sum of values accumulates in registers.
//
// Why: the scalar form pays a call and a horizontal reduction per position for the scores and a
// load/store of the whole output per position for the values; at 512-token prompts the scalar
// kernel was 17% of AVX2 prefill time (tinyllama Q4_0, 2-core EPYC).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "kernels/exp_impl.h"

namespace rme::simd {

// head_dim = kNd * S::kLanes. Positions are visited block by block in cache order.
template <typename S, int kNd>
void attend(const float* q, const float* k, const float* v, const int* blocks, int64_t block_size,
            int64_t block_stride, int64_t stride, int64_t n_kv, float* scratch, float* out) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  const float scale = 1.0f / std::sqrt(static_cast<float>(L * kNd));
  V qv[kNd];
#pragma GCC unroll 32
  for (int d = 0; d < kNd; ++d) qv[d] = S::load(q + L * d);

  // Scores, and their maximum.
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0, t = 0; t < n_kv; ++b) {
    const float* kb = k + blocks[b] * block_stride;
    for (int64_t r = 0; r < block_size && t < n_kv; ++r, ++t) {
      const float* kt = kb + r * stride;
      V acc = S::mul(qv[0], S::load(kt));
#pragma GCC unroll 32
      for (int d = 1; d < kNd; ++d) acc = S::fmadd(qv[d], S::load(kt + L * d), acc);
      const float s = S::reduce_add(acc) * scale;
      scratch[t] = s;
      mx = s > mx ? s : mx;
    }
  }

  // Unnormalized probabilities and their sum; the last partial vector goes through a padded copy
  // whose padding lanes are computed and dropped.
  const V vmx = S::set1(mx);
  V vsum = S::zero();
  int64_t t = 0;
  for (; t + L <= n_kv; t += L) {
    const V e = exp_nonpositive<S>(S::sub(S::load(scratch + t), vmx));
    S::store(scratch + t, e);
    vsum = S::add(vsum, e);
  }
  float sum = S::reduce_add(vsum);
  if (t < n_kv) {
    float tail[L];
    for (int i = 0; i < L; ++i) tail[i] = t + i < n_kv ? scratch[t + i] : mx;
    S::store(tail, exp_nonpositive<S>(S::sub(S::load(tail), vmx)));
    for (int i = 0; t + i < n_kv; ++i) {
      scratch[t + i] = tail[i];
      sum += tail[i];
    }
  }
  const float inv = 1.0f / sum;

  // out = sum_t p_t v_t / sum_t p_t, accumulated in registers.
  V acc[kNd];
#pragma GCC unroll 32
  for (int d = 0; d < kNd; ++d) acc[d] = S::zero();
  t = 0;
  for (int64_t b = 0; t < n_kv; ++b) {
    const float* vb = v + blocks[b] * block_stride;
    for (int64_t r = 0; r < block_size && t < n_kv; ++r, ++t) {
      const float* vt = vb + r * stride;
      const V a = S::set1(scratch[t]);
#pragma GCC unroll 32
      for (int d = 0; d < kNd; ++d) acc[d] = S::fmadd(a, S::load(vt + L * d), acc[d]);
    }
  }
  const V vinv = S::set1(inv);
#pragma GCC unroll 32
  for (int d = 0; d < kNd; ++d) S::store(out + L * d, S::mul(acc[d], vinv));
}

using AttendFn = void (*)(const float*, const float*, const float*, const int*, int64_t, int64_t,
                          int64_t, int64_t, float*, float*);

// Head sizes up to 128 (Llama-family models use 64 or 128).
constexpr int64_t kMaxHeadDim = 128;

template <typename S, size_t... I>
constexpr auto attend_table(std::index_sequence<I...>) {
  return std::array<AttendFn, sizeof...(I)>{attend<S, static_cast<int>(I) + 1>...};
}

// attend<S, n> for head_dim = n * S::kLanes up to kMaxHeadDim, or nullptr when head_dim is not a
// multiple of the lanes or too large.
template <typename S>
AttendFn attend_for(int64_t head_dim) {
  static constexpr auto kByDims =
      attend_table<S>(std::make_index_sequence<kMaxHeadDim / S::kLanes>());
  if (head_dim <= 0 || head_dim % S::kLanes != 0 || head_dim > kMaxHeadDim) return nullptr;
  return kByDims[head_dim / S::kLanes - 1];
}

// attention_head_paged for S: false (doing nothing) for a head_dim it has no kernel for or n_kv 0.
template <typename S>
bool attention_paged(const float* q, const float* k, const float* v, const int* blocks,
                     int64_t block_size, int64_t block_stride, int64_t stride, int64_t n_kv,
                     int64_t head_dim, float* scratch, float* out) {
  const AttendFn fn = attend_for<S>(head_dim);
  if (fn == nullptr || n_kv <= 0) return false;
  fn(q, k, v, blocks, block_size, block_stride, stride, n_kv, scratch, out);
  return true;
}

}  // namespace rme::simd
