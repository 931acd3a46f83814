// kernels: AVX-512 (F, BW, VL, DQ) + F16C row kernels (compiled with those flags; only called
// when the CPU has them).
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

// R rows at once, each with exactly the single-row arithmetic (so dot4 == 4 x dot, bit for bit),
// sharing the x loads; R independent weight streams keep more memory requests in flight.
template <int R, typename L>
void dot_float_rows(const L* w, const float* x, int64_t k, float* out) {
  __m512 a0[R], a1[R], a2[R], a3[R];
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = a2[r] = a3[r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
    const __m512 x2 = _mm512_loadu_ps(x + i + 32), x3 = _mm512_loadu_ps(x + i + 48);
    for (int r = 0; r < R; ++r) {
      a0[r] = _mm512_fmadd_ps(w[r].load(i), x0, a0[r]);
      a1[r] = _mm512_fmadd_ps(w[r].load(i + 16), x1, a1[r]);
      a2[r] = _mm512_fmadd_ps(w[r].load(i + 32), x2, a2[r]);
      a3[r] = _mm512_fmadd_ps(w[r].load(i + 48), x3, a3[r]);
    }
  }
  for (; i + 16 <= k; i += 16)
    for (int r = 0; r < R; ++r)
      a0[r] = _mm512_fmadd_ps(w[r].load(i), _mm512_loadu_ps(x + i), a0[r]);
  if (i < k) {
    __mmask16 m = tail_mask(k - i);
    for (int r = 0; r < R; ++r)
      a1[r] = _mm512_fmadd_ps(w[r].load_masked(i, m), _mm512_maskz_loadu_ps(m, x + i), a1[r]);
  }
  for (int r = 0; r < R; ++r)
    out[r] = _mm512_reduce_add_ps(
        _mm512_add_ps(_mm512_add_ps(a0[r], a1[r]), _mm512_add_ps(a2[r], a3[r])));
}

template <typename L>
float dot_float(const L& w, const float* x, int64_t k) {
  float out;
  dot_float_rows<1>(&w, x, k, &out);
  return out;
}

template <typename L, typename T>
void dot4_float(const void* w, size_t row_bytes, const float* x, int64_t k, float* out) {
  const auto* base = static_cast<const uint8_t*>(w);
  const L rows[4] = {{reinterpret_cast<const T*>(base)},
                     {reinterpret_cast<const T*>(base + row_bytes)},
                     {reinterpret_cast<const T*>(base + 2 * row_bytes)},
                     {reinterpret_cast<const T*>(base + 3 * row_bytes)}};
  dot_float_rows<4>(rows, x, k, out);
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

template <int R, typename Block, void (*Decode)(const Block&, __m512*)>
void dot_quant_rows(const Block* const* b, const float* x, int64_t k, float* out) {
  __m512 acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  int64_t nb = k / kQBlock;
  int64_t ib = 0;
  for (; ib + 2 <= nb; ib += 2) {
    const float* xb = x + ib * kQBlock;
    const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
    const __m512 x2 = _mm512_loadu_ps(xb + 32), x3 = _mm512_loadu_ps(xb + 48);
    for (int r = 0; r < R; ++r) {
      __m512 v[2], u[2];
      Decode(b[r][ib], v);
      Decode(b[r][ib + 1], u);
      __m512 s0 = _mm512_fmadd_ps(v[1], x1, _mm512_mul_ps(v[0], x0));
      __m512 s1 = _mm512_fmadd_ps(u[1], x3, _mm512_mul_ps(u[0], x2));
      acc0[r] = _mm512_fmadd_ps(s0, _mm512_set1_ps(f16_to_f32(b[r][ib].d)), acc0[r]);
      acc1[r] = _mm512_fmadd_ps(s1, _mm512_set1_ps(f16_to_f32(b[r][ib + 1].d)), acc1[r]);
    }
  }
  if (ib < nb) {
    const float* xb = x + ib * kQBlock;
    for (int r = 0; r < R; ++r) {
      __m512 v[2];
      Decode(b[r][ib], v);
      __m512 s0 = _mm512_fmadd_ps(v[1], _mm512_loadu_ps(xb + 16),
                                  _mm512_mul_ps(v[0], _mm512_loadu_ps(xb)));
      acc0[r] = _mm512_fmadd_ps(s0, _mm512_set1_ps(f16_to_f32(b[r][ib].d)), acc0[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r]));
}

template <typename Block, void (*Decode)(const Block&, __m512*)>
float dot_quant(const void* w, const float* x, int64_t k) {
  const Block* b = static_cast<const Block*>(w);
  float out;
  dot_quant_rows<1, Block, Decode>(&b, x, k, &out);
  return out;
}

template <typename Block, void (*Decode)(const Block&, __m512*)>
void dot4_quant(const void* w, size_t row_bytes, const float* x, int64_t k, float* out) {
  const auto* base = static_cast<const uint8_t*>(w);
  const Block* b[4];
  for (int r = 0; r < 4; ++r) b[r] = reinterpret_cast<const Block*>(base + r * row_bytes);
  dot_quant_rows<4, Block, Decode>(b, x, k, out);
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

const RowKernels& row_kernels_avx512() {
  static const RowKernels k = {
      {dot_f32, dot_f16, dot_bf16, dot_quant<Q8_0Block, q8_0_decode>,
       dot_quant<Q4_0Block, q4_0_decode>},
      {to_f32_f32, to_f32_f16, to_f32_bf16, to_f32_quant<Q8_0Block, q8_0_decode>,
       to_f32_quant<Q4_0Block, q4_0_decode>},
      {dot4_float<F32Load, float>, dot4_float<F16Load, uint16_t>,
       dot4_float<BF16Load, uint16_t>, dot4_quant<Q8_0Block, q8_0_decode>,
       dot4_quant<Q4_0Block, q4_0_decode>},
  };
  return k;
}

}  // namespace rme
