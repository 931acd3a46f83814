// kernels: the AArch64 NEON vector traits for the ISA-generic kernel sources (*_impl.h); the same
// members as simd_avx2.h with four f32 lanes. NEON is part of every AArch64 CPU.
#pragma once

#include <arm_neon.h>

#include <cstdint>

namespace rme::simd {

struct Neon {
  using V = float32x4_t;
  static constexpr int kLanes = 4;
  static V zero() { return vdupq_n_f32(0.0f); }
  static V set1(float x) { return vdupq_n_f32(x); }
  static V load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  static V sub(V a, V b) { return vsubq_f32(a, b); }
  static V mul(V a, V b) { return vmulq_f32(a, b); }
  static V max(V a, V b) { return vmaxq_f32(a, b); }
  static V fmadd(V a, V b, V c) { return vfmaq_f32(c, a, b); }   // a * b + c
  static V fnmadd(V a, V b, V c) { return vfmsq_f32(c, a, b); }  // c - a * b
  static float reduce_add(V v) { return vaddvq_f32(v); }
  static V load_f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static V load_bf16(const uint16_t* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
  }
  static float f16_to_f32(uint16_t h) {
    __fp16 f;
    __builtin_memcpy(&f, &h, 2);
    return static_cast<float>(f);
  }
  static V round_nearest(V v) { return vrndnq_f32(v); }
  // v * 2^n for integral n in [-126, 127] (n as floats): n + 127 into the exponent field.
  static V scale_pow2(V v, V n) {
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(v, vreinterpretq_f32_s32(e));
  }
};

}  // namespace rme::simd
