// kernels: the AVX-512 (F, BW, DQ, VL) + F16C vector traits for the ISA-generic kernel sources
// (*_impl.h), as simd_avx2.h is for AVX2. Include only from a TU compiled with the AVX-512 flags.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace rme::simd {

// Sixteen f32 lanes; the same members as Avx2, so the same generic source compiles for either.
struct Avx512 {
  using V = __m512;
  static constexpr int kLanes = 16;
  // Float kernel shape (float_dot_impl.h). Two chains per output, so a one-token call can stream
  // one row at a time (four rows side by side, AVX2's shape, decoded F16 at 0.72x of one row's
  // speed here: four streams per core); 4 x 3 tiles of 2 chains use 24 of the 32 registers.
  // Measured on a Zen 5 (tinyllama F16, 2 threads, alternating): tiles 4 x 3 164 tok/s pp128,
  // 3 x 4 155, 2 x 4 137; one-token rows 1 (2 chains) 29.6 tok/s tg, 2 (2 chains) 21.9, 4 (1
  // chain) 24.7.
  static constexpr int kChains = 2, kTileRows = 4, kTileTokens = 3, kDecodeRows = 1;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }    // a * b + c
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a * b
  // A fixed pairwise order (256-bit halves, then as Avx2's), the same in every caller.
  static float reduce_add(V v) {
    const __m256 h =
        _mm256_add_ps(_mm512_castps512_ps256(v),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  static V load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static V load_bf16(const uint16_t* p) {
    const __m512i v =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
  static float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
  static V round_nearest(V v) {
    return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static V scale_pow2(V v, V n) { return _mm512_scalef_ps(v, n); }
};

}  // namespace rme::simd
