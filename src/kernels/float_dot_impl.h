// kernels: dot products of F32/F16/BF16 weight rows with f32 activations — one token or a tile of
// tokens — written once against vector traits S (simd_*.h) and compiled per ISA (matmul_avx2.cc,
// matmul_neon.cc).
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace rme::simd {

// Loaders turn S::kLanes stored elements at index i into floats; at(i) is the scalar tail.
template <typename S>
struct F32Row {
  const float* p;
  typename S::V load(int64_t i) const { return S::load(p + i); }
  float at(int64_t i) const { return p[i]; }
};
template <typename S>
struct F16Row {
  const uint16_t* p;
  typename S::V load(int64_t i) const { return S::load_f16(p + i); }
  float at(int64_t i) const { return S::f16_to_f32(p[i]); }
};
template <typename S>
struct BF16Row {
  const uint16_t* p;
  typename S::V load(int64_t i) const { return S::load_bf16(p + i); }
  float at(int64_t i) const {
    const uint32_t bits = static_cast<uint32_t>(p[i]) << 16;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
  }
};

// One weight row dotted with T tokens, each vector of the row loaded (converted) once for all of
// them. Every output is computed by the same operations in the same order whatever T is (four
// accumulators over 4-vector steps, a 1-vector step into the first, one horizontal sum, the scalar
// tail), so the one-token kernel (T = 1) and a batch give bit-identical results: matmul's batch
// invariance. Four accumulators hide FMA latency; T <= 3 keeps 12 of them in registers.
template <typename S, typename L, int T>
void dot_float_tile(const L& w, const float* x, int64_t x_stride, int64_t k, float* out) {
  using V = typename S::V;
  constexpr int N = S::kLanes;
  V a[T][4];
  for (int t = 0; t < T; ++t) a[t][0] = a[t][1] = a[t][2] = a[t][3] = S::zero();
  int64_t i = 0;
  for (; i + 4 * N <= k; i += 4 * N) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const V wv = w.load(i + N * j);
#pragma GCC unroll 3
      for (int t = 0; t < T; ++t)
        a[t][j] = S::fmadd(wv, S::load(x + t * x_stride + i + N * j), a[t][j]);
    }
  }
  for (; i + N <= k; i += N) {
    const V wv = w.load(i);
#pragma GCC unroll 3
    for (int t = 0; t < T; ++t) a[t][0] = S::fmadd(wv, S::load(x + t * x_stride + i), a[t][0]);
  }
#pragma GCC unroll 3
  for (int t = 0; t < T; ++t) {
    float s = S::reduce_add(S::add(S::add(a[t][0], a[t][1]), S::add(a[t][2], a[t][3])));
    for (int64_t e = i; e < k; ++e) s += w.at(e) * x[t * x_stride + e];
    out[t] = s;
  }
}

template <typename S, typename L, typename Stored>
float dot_row(const void* w, const float* x, int64_t k) {
  float out;
  dot_float_tile<S, L, 1>(L{static_cast<const Stored*>(w)}, x, 0, k, &out);
  return out;
}

template <typename S, typename L, typename Stored>
void row_to_f32(const void* w, float* out, int64_t k) {
  const L row{static_cast<const Stored*>(w)};
  int64_t i = 0;
  for (; i + S::kLanes <= k; i += S::kLanes) S::store(out + i, row.load(i));
  for (; i < k; ++i) out[i] = row.at(i);
}

template <typename S, typename L, typename Stored>
void tile_rows(const void* w, const float* x, int64_t x_stride, int n_tok, int64_t k, float* out) {
  const L row{static_cast<const Stored*>(w)};
  switch (n_tok) {
    case 3:
      return dot_float_tile<S, L, 3>(row, x, x_stride, k, out);
    case 2:
      return dot_float_tile<S, L, 2>(row, x, x_stride, k, out);
    default:
      return dot_float_tile<S, L, 1>(row, x, x_stride, k, out);
  }
}

// The FloatTileFn of S for a float dtype, nullptr for the others.
template <typename S>
FloatTileFn float_tile_for(DType t) {
  switch (t) {
    case DType::kF32:
      return tile_rows<S, F32Row<S>, float>;
    case DType::kF16:
      return tile_rows<S, F16Row<S>, uint16_t>;
    case DType::kBF16:
      return tile_rows<S, BF16Row<S>, uint16_t>;
    default:
      return nullptr;
  }
}

}  // namespace rme::simd
