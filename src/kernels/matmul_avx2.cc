// kernels: AVX2 + FMA + F16C row kernels (this file is compiled with -mavx2 -mfma -mf16c and is
// only called when the CPU has them).
#include <immintrin.h>

#include "kernels/matmul.h"

namespace rme {
namespace {

// Local scalar conversions: shared inline helpers must not be compiled with ISA flags here, or
// the linker could keep this TU's copy for callers on CPUs without the ISA (ODR).
inline float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// Loaders turn 8 stored elements at index i into 8 floats; at(i) is the scalar tail.
struct F32Load {
  const float* p;
  __m256 load(int64_t i) const { return _mm256_loadu_ps(p + i); }
  float at(int64_t i) const { return p[i]; }
};
struct F16Load {
  const uint16_t* p;
  __m256 load(int64_t i) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
  }
  float at(int64_t i) const { return f16_to_f32(p[i]); }
};
struct BF16Load {
  const uint16_t* p;
  __m256 load(int64_t i) const {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  float at(int64_t i) const { return bf16_to_f32(p[i]); }
};

// One weight row dotted with T tokens, each 8-element load converted once for all of them. Every
// output is computed by the same operations in the same order whatever T is (four accumulators
// over 32-element steps, an 8-element step into the first, one horizontal sum, the scalar tail),
// so the one-token kernel (T = 1) and a batch of tokens give bit-identical results: matmul's
// batch invariance. Four accumulators hide FMA latency; T <= 3 keeps 12 of them in registers.
template <typename L, int T>
void dot_float_tile(const L& w, const float* x, int64_t x_stride, int64_t k, float* out) {
  __m256 a[T][4];
  for (int t = 0; t < T; ++t) a[t][0] = a[t][1] = a[t][2] = a[t][3] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m256 wv = w.load(i + 8 * j);
#pragma GCC unroll 3
      for (int t = 0; t < T; ++t)
        a[t][j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * x_stride + i + 8 * j), a[t][j]);
    }
  }
  for (; i + 8 <= k; i += 8) {
    const __m256 wv = w.load(i);
#pragma GCC unroll 3
    for (int t = 0; t < T; ++t)
      a[t][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * x_stride + i), a[t][0]);
  }
#pragma GCC unroll 3
  for (int t = 0; t < T; ++t) {
    float s = hsum(_mm256_add_ps(_mm256_add_ps(a[t][0], a[t][1]), _mm256_add_ps(a[t][2], a[t][3])));
    for (int64_t e = i; e < k; ++e) s += w.at(e) * x[t * x_stride + e];
    out[t] = s;
  }
}

template <typename L>
float dot_float(const L& w, const float* x, int64_t k) {
  float out;
  dot_float_tile<L, 1>(w, x, 0, k, &out);
  return out;
}

// FloatTileFn for loader L over storage type S.
template <typename L, typename S>
void float_tile(const void* w, const float* x, int64_t x_stride, int n_tok, int64_t k, float* out) {
  const L lw{static_cast<const S*>(w)};
  switch (n_tok) {
    case 3:
      return dot_float_tile<L, 3>(lw, x, x_stride, k, out);
    case 2:
      return dot_float_tile<L, 2>(lw, x, x_stride, k, out);
    default:
      return dot_float_tile<L, 1>(lw, x, x_stride, k, out);
  }
}

template <typename L>
void to_f32_float(const L& w, float* out, int64_t k) {
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) _mm256_storeu_ps(out + i, w.load(i));
  for (; i < k; ++i) out[i] = w.at(i);
}

float dot_f32(const void* w, const float* x, int64_t k) {
  return dot_float(F32Load{static_cast<const float*>(w)}, x, k);
}
float dot_f16(const void* w, const float* x, int64_t k) {
  return dot_float(F16Load{static_cast<const uint16_t*>(w)}, x, k);
}
float dot_bf16(const void* w, const float* x, int64_t k) {
  return dot_float(BF16Load{static_cast<const uint16_t*>(w)}, x, k);
}
void to_f32_f32(const void* w, float* o, int64_t k) {
  to_f32_float(F32Load{static_cast<const float*>(w)}, o, k);
}
void to_f32_f16(const void* w, float* o, int64_t k) {
  to_f32_float(F16Load{static_cast<const uint16_t*>(w)}, o, k);
}
void to_f32_bf16(const void* w, float* o, int64_t k) {
  to_f32_float(BF16Load{static_cast<const uint16_t*>(w)}, o, k);
}

// 8 signed bytes -> 8 floats.
inline __m256 i8x8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }

// Q8_0 / Q4_0 blocks decoded into 4 x 8 floats (before scaling by d).
inline void q8_0_decode(const Q8_0Block& b, __m256 v[4]) {
  __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q));
  __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q + 16));
  v[0] = i8x8_to_ps(lo);
  v[1] = i8x8_to_ps(_mm_srli_si128(lo, 8));
  v[2] = i8x8_to_ps(hi);
  v[3] = i8x8_to_ps(_mm_srli_si128(hi, 8));
}
inline void q4_0_decode(const Q4_0Block& b, __m256 v[4]) {
  __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q));
  __m128i mask = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
  __m128i lo = _mm_sub_epi8(_mm_and_si128(bytes, mask), eight);                     // elems 0..15
  __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), eight);  // 16..31
  v[0] = i8x8_to_ps(lo);
  v[1] = i8x8_to_ps(_mm_srli_si128(lo, 8));
  v[2] = i8x8_to_ps(hi);
  v[3] = i8x8_to_ps(_mm_srli_si128(hi, 8));
}

template <typename Block, void (*Decode)(const Block&, __m256*)>
float dot_quant(const void* w, const float* x, int64_t k) {
  const Block* b = static_cast<const Block*>(w);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  for (int64_t ib = 0; ib < k / kQBlock; ++ib) {
    __m256 v[4];
    Decode(b[ib], v);
    const float* xb = x + ib * kQBlock;
    __m256 s0 = _mm256_mul_ps(v[0], _mm256_loadu_ps(xb));
    __m256 s1 = _mm256_mul_ps(v[1], _mm256_loadu_ps(xb + 8));
    s0 = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(xb + 16), s0);
    s1 = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(xb + 24), s1);
    __m256 d = _mm256_set1_ps(f16_to_f32(b[ib].d));
    if (ib & 1) {
      acc1 = _mm256_fmadd_ps(_mm256_add_ps(s0, s1), d, acc1);
    } else {
      acc0 = _mm256_fmadd_ps(_mm256_add_ps(s0, s1), d, acc0);
    }
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

template <typename Block, void (*Decode)(const Block&, __m256*)>
void to_f32_quant(const void* w, float* out, int64_t k) {
  const Block* b = static_cast<const Block*>(w);
  for (int64_t ib = 0; ib < k / kQBlock; ++ib) {
    __m256 v[4];
    Decode(b[ib], v);
    __m256 d = _mm256_set1_ps(f16_to_f32(b[ib].d));
    for (int j = 0; j < 4; ++j)
      _mm256_storeu_ps(out + ib * kQBlock + 8 * j, _mm256_mul_ps(v[j], d));
  }
}

}  // namespace

FloatTileFn float_tile_avx2(DType t) {
  switch (t) {
    case DType::kF32:
      return float_tile<F32Load, float>;
    case DType::kF16:
      return float_tile<F16Load, uint16_t>;
    case DType::kBF16:
      return float_tile<BF16Load, uint16_t>;
    default:
      return nullptr;
  }
}

const RowKernels& row_kernels_avx2() {
  static const RowKernels k = {
      {dot_f32, dot_f16, dot_bf16, dot_quant<Q8_0Block, q8_0_decode>,
       dot_quant<Q4_0Block, q4_0_decode>},
      {to_f32_f32, to_f32_f16, to_f32_bf16, to_f32_quant<Q8_0Block, q8_0_decode>,
       to_f32_quant<Q4_0Block, q4_0_decode>},
  };
  return k;
}

}  // namespace rme
