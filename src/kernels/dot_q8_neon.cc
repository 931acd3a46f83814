// kernels: AArch64 integer dot products of Q8_0 / Q4_0 weight rows with int8 activations, by the
// DotProd extension's sdot (four 8-bit products summed into each 32-bit lane). Compiled with
// +dotprod and selected only on CPUs that report it (dot_q8.cc).
#include <arm_neon.h>

#include "kernels/dot_q8.h"

namespace rme {
namespace {

inline float f16(uint16_t h) {
  __fp16 f;
  __builtin_memcpy(&f, &h, 2);
  return static_cast<float>(f);
}

// Block b of weights (as two 16-lane signed halves) times the activations: the exact integer sum
// as 4 int32 lanes, then the block's scale d_w * d_x applied in f32. Two accumulators, even and
// odd blocks.
template <typename Block, typename Halves>
float dot_blocks(const Block* b, const int8_t* q, const float* d, int64_t nb, Halves halves) {
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
  for (int64_t ib = 0; ib < nb; ++ib) {
    int8x16_t lo, hi;
    halves(b[ib], lo, hi);
    int32x4_t s = vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8(q + ib * kQBlock));
    s = vdotq_s32(s, hi, vld1q_s8(q + ib * kQBlock + 16));
    const float scale = f16(b[ib].d) * d[ib];
    if (ib & 1) {
      acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(s), scale);
    } else {
      acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(s), scale);
    }
  }
  return vaddvq_f32(vaddq_f32(acc0, acc1));
}

float dot_q8_0_neon(const void* w, const int8_t* q, const float* d, const float*, int64_t k) {
  return dot_blocks(static_cast<const Q8_0Block*>(w), q, d, k / kQBlock,
                    [](const Q8_0Block& b, int8x16_t& lo, int8x16_t& hi) {
                      lo = vld1q_s8(b.q);
                      hi = vld1q_s8(b.q + 16);
                    });
}

// Q4_0: byte i holds element i (low nibble) and i + 16 (high), each stored as w + 8.
float dot_q4_0_neon(const void* w, const int8_t* q, const float* d, const float*, int64_t k) {
  return dot_blocks(static_cast<const Q4_0Block*>(w), q, d, k / kQBlock,
                    [](const Q4_0Block& b, int8x16_t& lo, int8x16_t& hi) {
                      const uint8x16_t v = vld1q_u8(b.q);
                      const int8x16_t eight = vdupq_n_s8(8);
                      lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f))), eight);
                      hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
                    });
}

}  // namespace

DotQ8Fn dot_q8_neon(DType t) {
  return t == DType::kQ8_0 ? dot_q8_0_neon : t == DType::kQ4_0 ? dot_q4_0_neon : nullptr;
}

}  // namespace rme
