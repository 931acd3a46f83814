// kernels: the Q4_0 decode dot product for CPUs with AVX-512 VBMI as well as VNNI (Ice Lake, Zen 4
// and later): byte permutes gather four blocks' nibbles and scales straight from two loads.
//
// Why: four Q4_0 blocks are 72 bytes, 2-byte scales interleaved with 16-byte nibble arrays. The
// VNNI-only kernel assembles them with four loads, three inserts and four scalar scale loads per
// four blocks; here two overlapping 64-byte loads and one vpermt2b give the nibbles and one vpermb
// the scales — about a third fewer instructions, which matters because Q4_0 decode was
// instruction-bound (below the bandwidth Q8_0 decode reaches).
#include <immintrin.h>

#include <array>
#include <cstdint>

#include "kernels/dot_q8.h"

namespace rme {
namespace {

// Byte indices into (a = bytes 0..63, c = bytes 8..71 of four blocks) for vpermt2b: lane group L
// gets block L's 16 nibble bytes, at byte 2 + 18 L + j.
constexpr std::array<uint8_t, 64> kNibbleIdx = [] {
  std::array<uint8_t, 64> idx{};
  for (int l = 0; l < 4; ++l)
    for (int j = 0; j < 16; ++j) {
      const int src = 2 + 18 * l + j;
      idx[16 * l + j] = static_cast<uint8_t>(src < 64 ? src : 64 + (src - 8));
    }
  return idx;
}();

// Bytes 0-7 of the result: the four blocks' f16 scales (at byte 18 L, little-endian).
constexpr std::array<uint8_t, 64> kScaleIdx = [] {
  std::array<uint8_t, 64> idx{};
  for (int l = 0; l < 4; ++l) {
    idx[2 * l] = static_cast<uint8_t>(18 * l);
    idx[2 * l + 1] = static_cast<uint8_t>(18 * l + 1);
  }
  return idx;
}();

struct Quad {
  __m512i dp;  // block L's partial sums in 128-bit lane L
  __m128 s4;   // the four blocks' d_w * d_x
};

inline Quad q4_quad(const Q4_0Block* b, const int8_t* q, const float* d, __m512i nib_idx,
                    __m512i scale_idx) {
  const auto* p = reinterpret_cast<const uint8_t*>(b);
  const __m512i a = _mm512_loadu_si512(p), c = _mm512_loadu_si512(p + 8);
  const __m512i raw = _mm512_permutex2var_epi8(a, nib_idx, c);
  const __m128i h = _mm512_castsi512_si128(_mm512_permutexvar_epi8(scale_idx, a));
  const __m512i mask = _mm512_set1_epi8(0x0f);
  const __m512i lo = _mm512_and_si512(raw, mask);
  const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask);
  const __m512i xa = _mm512_loadu_si512(q), xb = _mm512_loadu_si512(q + 64);
  // Block L's first 16 activations are qwords 4L, 4L+1 of (xa, xb); its last 16, 4L+2, 4L+3.
  const __m512i xlo = _mm512_permutex2var_epi64(xa, _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0), xb);
  const __m512i xhi =
      _mm512_permutex2var_epi64(xa, _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2), xb);
  return {_mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi),
          _mm_mul_ps(_mm_cvtph_ps(h), _mm_loadu_ps(d))};
}

inline __m512 lane_scales(__m128 s4) {  // s4[L] broadcast over 128-bit lane L
  return _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
                               _mm512_castps128_ps512(s4));
}

}  // namespace

// Same contract and arithmetic as dot_q4_vnni (dot_q8_vnni.cc): integer block sums on the raw
// nibbles, the 8 offset through the activation block sums, the last < 4 blocks exactly.
float dot_q4_vbmi(const void* w, const int8_t* q, const float* d, const float* sum, int64_t k) {
  const auto* b = static_cast<const Q4_0Block*>(w);
  const int64_t nb = k / kQBlock;
  const __m512i nib_idx = _mm512_loadu_si512(kNibbleIdx.data());
  const __m512i scale_idx = _mm512_loadu_si512(kScaleIdx.data());
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  __m128 off = _mm_setzero_ps();
  int64_t ib = 0;
  for (; ib + 8 <= nb; ib += 8) {
    const Quad u = q4_quad(b + ib, q + ib * kQBlock, d + ib, nib_idx, scale_idx);
    const Quad v = q4_quad(b + ib + 4, q + (ib + 4) * kQBlock, d + ib + 4, nib_idx, scale_idx);
    off = _mm_fmadd_ps(u.s4, _mm_loadu_ps(sum + ib), off);
    off = _mm_fmadd_ps(v.s4, _mm_loadu_ps(sum + ib + 4), off);
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(u.dp), lane_scales(u.s4), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v.dp), lane_scales(v.s4), acc1);
  }
  if (ib + 4 <= nb) {
    const Quad u = q4_quad(b + ib, q + ib * kQBlock, d + ib, nib_idx, scale_idx);
    off = _mm_fmadd_ps(u.s4, _mm_loadu_ps(sum + ib), off);
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(u.dp), lane_scales(u.s4), acc0);
    ib += 4;
  }
  float tail = 0;
  for (; ib < nb; ++ib) {  // at most 3 blocks: the exact scalar-equivalent form
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

}  // namespace rme
