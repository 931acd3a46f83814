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
#include "kernels/q4_dot_avx512.h"

namespace rme {
namespace {

// Byte indices into (lo64 = bytes 0..63, hi64 = bytes 8..71 of four blocks) for vpermt2b: lane L
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

}  // namespace

// Same contract and arithmetic as dot_q4_vnni (dot_q8_vnni.cc); only the gathering differs.
float dot_q4_vbmi(const void* w, const int8_t* q, const float* d, const float* sum, int64_t k) {
  const auto* b = static_cast<const Q4_0Block*>(w);
  const __m512i nib_idx = _mm512_loadu_si512(kNibbleIdx.data());
  const __m512i scale_idx = _mm512_loadu_si512(kScaleIdx.data());
  return q4_dot(b, q, d, sum, k / kQBlock, [&](int64_t ib) {
    const auto* p = reinterpret_cast<const uint8_t*>(b + ib);
    const __m512i lo64 = _mm512_loadu_si512(p), hi64 = _mm512_loadu_si512(p + 8);
    const __m512i raw = _mm512_permutex2var_epi8(lo64, nib_idx, hi64);
    const __m128i h = _mm512_castsi512_si128(_mm512_permutexvar_epi8(scale_idx, lo64));
    return Q4Quad{q4_nibble_dot(raw, q + ib * kQBlock),
                  _mm_mul_ps(_mm_cvtph_ps(h), _mm_loadu_ps(d + ib))};
  });
}

}  // namespace rme
