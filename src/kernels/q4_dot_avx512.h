// kernels: the Q4_0 decode loop shared by the AVX-512 VNNI and VBMI kernels (dot_q8_vnni.cc,
// dot_q4_vbmi.cc), which differ only in how they gather four blocks' nibbles and scales.
//
// Include only from files compiled with AVX-512 VNNI flags. Everything here has internal linkage
// on purpose: each ISA file keeps its own copy, so the linker can never hand the VNNI-only path a
// copy compiled with VBMI instructions.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "tensor/dtype.h"

namespace rme {
namespace {

// Four consecutive blocks: block L's partial sums of (nibbles . q) in 128-bit lane L, and the
// four blocks' d_w * d_x.
struct Q4Quad {
  __m512i dp;
  __m128 s4;
};

// raw: four blocks' 16 nibble bytes, block L in 128-bit lane L; q: their 128 activations. One AND
// and one shift+AND give all low and all high nibbles; the activations are regrouped to match
// (block L's first 16 are qwords 4L, 4L+1 of q[0..127], its last 16 4L+2, 4L+3).
inline __m512i q4_nibble_dot(__m512i raw, const int8_t* q) {
  const __m512i mask = _mm512_set1_epi8(0x0f);
  const __m512i lo = _mm512_and_si512(raw, mask);
  const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask);
  const __m512i xa = _mm512_loadu_si512(q), xb = _mm512_loadu_si512(q + 64);
  const __m512i xlo = _mm512_permutex2var_epi64(xa, _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0), xb);
  const __m512i xhi =
      _mm512_permutex2var_epi64(xa, _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2), xb);
  return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi);
}

inline __m512 q4_lane_scales(__m128 s4) {  // s4[L] broadcast over 128-bit lane L
  return _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
                               _mm512_castps128_ps512(s4));
}

// dot(Q4_0 row, quantized activations) with the nibble offset taken out through the activation
// block sums: integer block sums on the raw nibbles 0..15, one FMA per four blocks applies their
// scales, and 8 * sum_b(s_b * sum_q_b) accumulates alongside. quad(ib) -> Q4Quad for blocks
// ib .. ib + 3. The last < 4 blocks use the exact scalar form.
template <typename QuadFn>
float q4_dot(const Q4_0Block* b, const int8_t* q, const float* d, const float* sum, int64_t nb,
             QuadFn quad) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  __m128 off = _mm_setzero_ps();
  int64_t ib = 0;
  for (; ib + 8 <= nb; ib += 8) {
    const Q4Quad u = quad(ib), v = quad(ib + 4);
    off = _mm_fmadd_ps(u.s4, _mm_loadu_ps(sum + ib), off);
    off = _mm_fmadd_ps(v.s4, _mm_loadu_ps(sum + ib + 4), off);
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(u.dp), q4_lane_scales(u.s4), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v.dp), q4_lane_scales(v.s4), acc1);
  }
  if (ib + 4 <= nb) {
    const Q4Quad u = quad(ib);
    off = _mm_fmadd_ps(u.s4, _mm_loadu_ps(sum + ib), off);
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(u.dp), q4_lane_scales(u.s4), acc0);
    ib += 4;
  }
  float tail = 0;
  for (; ib < nb; ++ib) {
    const float s = _cvtsh_ss(b[ib].d) * d[ib];
    int acc = 0;
    for (int i = 0; i < kQBlock / 2; ++i) {
      acc += ((b[ib].q[i] & 0x0f) - 8) * q[ib * kQBlock + i];
      acc += ((b[ib].q[i] >> 4) - 8) * q[ib * kQBlock + i + kQBlock / 2];
    }
    tail += s * static_cast<float>(acc);
  }
  const __m128 o = _mm_hadd_ps(off, off);
  const float offset = 8.0f * _mm_cvtss_f32(_mm_hadd_ps(o, o));
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) - offset + tail;
}

}  // namespace
}  // namespace rme
