// kernels: AVX-512 (F, BW, VL, DQ) + F16C row kernels (compiled with those flags; only called
// when the CPU has them).
#include <immintrin.h>

#include "kernels/float_dot_impl.h"
#include "kernels/matmul.h"
#include "kernels/simd_avx512.h"

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

struct F32Load {
  const float* p;
  __m512 load(int64_t i) const { return _mm512_loadu_ps(p + i); }
  __m512 load_masked(int64_t i, __mmask16 m) const { return _mm512_maskz_loadu_ps(m, p + i); }
};
struct F16Load {
  const uint16_t* p;
  __m512 load(int64_t i) const {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
  }
  __m512 load_masked(int64_t i, __mmask16 m) const {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p + i));
  }
};
struct BF16Load {
  const uint16_t* p;
  static __m512 widen(__m256i v) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
  }
  __m512 load(int64_t i) const {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
  }
  __m512 load_masked(int64_t i, __mmask16 m) const {
    return widen(_mm256_maskz_loadu_epi16(m, p + i));
  }
};

inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

template <typename L>
float dot_float(const L& w, const float* x, int64_t k) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    a0 = _mm512_fmadd_ps(w.load(i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(w.load(i + 16), _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(w.load(i + 32), _mm512_loadu_ps(x + i + 32), a2);
    a3 = _mm512_fmadd_ps(w.load(i + 48), _mm512_loadu_ps(x + i + 48), a3);
  }
  for (; i + 16 <= k; i += 16) a0 = _mm512_fmadd_ps(w.load(i), _mm512_loadu_ps(x + i), a0);
  if (i < k) {
    __mmask16 m = tail_mask(k - i);
    a1 = _mm512_fmadd_ps(w.load_masked(i, m), _mm512_maskz_loadu_ps(m, x + i), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

template <typename L>
void to_f32_float(const L& w, float* out, int64_t k) {
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) _mm512_storeu_ps(out + i, w.load(i));
  if (i < k) {
    __mmask16 m = tail_mask(k - i);
    _mm512_mask_storeu_ps(out + i, m, w.load_masked(i, m));
  }
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

inline __m512 i8x16_to_ps(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)); }

// A block as 2 x 16 floats (before scaling by d).
inline void q8_0_decode(const Q8_0Block& b, __m512 v[2]) {
  v[0] = i8x16_to_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q)));
  v[1] = i8x16_to_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q + 16)));
}
inline void q4_0_decode(const Q4_0Block& b, __m512 v[2]) {
  __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q));
  __m128i mask = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
  v[0] = i8x16_to_ps(_mm_sub_epi8(_mm_and_si128(bytes, mask), eight));
  v[1] = i8x16_to_ps(_mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), eight));
}

template <typename Block, void (*Decode)(const Block&, __m512*)>
float dot_quant(const void* w, const float* x, int64_t k) {
  const Block* b = static_cast<const Block*>(w);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  int64_t nb = k / kQBlock;
  int64_t ib = 0;
  for (; ib + 2 <= nb; ib += 2) {
    __m512 v[2], u[2];
    Decode(b[ib], v);
    Decode(b[ib + 1], u);
    const float* xb = x + ib * kQBlock;
    __m512 s0 =
        _mm512_fmadd_ps(v[1], _mm512_loadu_ps(xb + 16), _mm512_mul_ps(v[0], _mm512_loadu_ps(xb)));
    __m512 s1 = _mm512_fmadd_ps(u[1], _mm512_loadu_ps(xb + 48),
                                _mm512_mul_ps(u[0], _mm512_loadu_ps(xb + 32)));
    acc0 = _mm512_fmadd_ps(s0, _mm512_set1_ps(f16_to_f32(b[ib].d)), acc0);
    acc1 = _mm512_fmadd_ps(s1, _mm512_set1_ps(f16_to_f32(b[ib + 1].d)), acc1);
  }
  if (ib < nb) {
    __m512 v[2];
    Decode(b[ib], v);
    const float* xb = x + ib * kQBlock;
    __m512 s0 =
        _mm512_fmadd_ps(v[1], _mm512_loadu_ps(xb + 16), _mm512_mul_ps(v[0], _mm512_loadu_ps(xb)));
    acc0 = _mm512_fmadd_ps(s0, _mm512_set1_ps(f16_to_f32(b[ib].d)), acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

template <typename Block, void (*Decode)(const Block&, __m512*)>
void to_f32_quant(const void* w, float* out, int64_t k) {
  const Block* b = static_cast<const Block*>(w);
  for (int64_t ib = 0; ib < k / kQBlock; ++ib) {
    __m512 v[2];
    Decode(b[ib], v);
    __m512 d = _mm512_set1_ps(f16_to_f32(b[ib].d));
    _mm512_storeu_ps(out + ib * kQBlock, _mm512_mul_ps(v[0], d));
    _mm512_storeu_ps(out + ib * kQBlock + 16, _mm512_mul_ps(v[1], d));
  }
}

}  // namespace

FloatRowsFn float_rows_avx512(DType t) { return simd::float_rows_for<simd::Avx512>(t); }

const RowKernels& row_kernels_avx512() {
  const RowKernels& ref = row_kernels_ref();
  static const RowKernels k = {
      {dot_f32, dot_f16, dot_bf16, dot_quant<Q8_0Block, q8_0_decode>,
       dot_quant<Q4_0Block, q4_0_decode>, ref.dot[static_cast<int>(DType::kQ4_K)],
       ref.dot[static_cast<int>(DType::kQ5_K)], ref.dot[static_cast<int>(DType::kQ6_K)]},
      {to_f32_f32, to_f32_f16, to_f32_bf16, to_f32_quant<Q8_0Block, q8_0_decode>,
       to_f32_quant<Q4_0Block, q4_0_decode>, ref.to_f32[static_cast<int>(DType::kQ4_K)],
       ref.to_f32[static_cast<int>(DType::kQ5_K)], ref.to_f32[static_cast<int>(DType::kQ6_K)]},
  };
  return k;
}

}  // namespace rme
