// tensor: llama.cpp's K-quant storage formats (Q4_K, Q5_K, Q6_K): block layouts, reference
// dequantization and rme's own quantizers (the kernels' integer dot products read these bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tensor/dtype.h"

namespace rme {

// Super-blocks of kKBlock = 256 weights, byte for byte as ggml lays them out (so GGUF files map
// without conversion):
//   Q4_K (144 bytes): f16 d, f16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32,
//        128 bytes of 4-bit quants: byte l of chunk c (32 bytes) holds weight 64c + l in its low
//        nibble and 64c + 32 + l in its high nibble; w = d * scale_j * q - dmin * min_j.
//   Q5_K (176 bytes): d, dmin, scales as Q4_K, then 32 bytes qh whose bit 2c (2c + 1) of byte l is
//        the fifth bit of weight 64c + l (64c + 32 + l), then the 128 bytes of low nibbles.
//   Q6_K (210 bytes): 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 int8 scales (scale i
//        for weights 16i..16i+15), f16 d; w = d * scale * (q - 32). In each half h (128 weights):
//        ql byte l (l < 64) low nibble is weight 128h + l, high nibble weight 128h + 64 + l; qh
//        byte l (l < 32) holds bits 4-5 of weights 128h + l, + 32, + 64, + 96 in its bit pairs 0-3.
inline constexpr size_t kQ4KBytes = 144, kQ5KBytes = 176, kQ6KBytes = 210;

// The 6-bit scale and min of sub-block j (0..7) from a Q4_K/Q5_K super-block's 12 scale bytes.
void kquant_scale_min(int j, const uint8_t* scales, int* scale, int* min);

// All eight 6-bit scales and mins of a Q4_K/Q5_K super-block's 12 scale bytes at once, byte j of
// *sc / *mn being sub-block j's (kquant_scale_min's rule undone on three 32-bit words). For the
// integer kernels; static so each ISA's TU keeps its own copy (no ODR merge across ISA flags).
static inline void kquant_scales_mins8(const uint8_t* scales, uint64_t* sc, uint64_t* mn) {
  uint32_t u0, u1, u2;
  std::memcpy(&u0, scales, 4), std::memcpy(&u1, scales + 4, 4), std::memcpy(&u2, scales + 8, 4);
  const uint32_t sc_lo = u0 & 0x3f3f3f3f, m_lo = u1 & 0x3f3f3f3f;
  const uint32_t sc_hi = (u2 & 0x0f0f0f0f) | ((u0 >> 2) & 0x30303030);
  const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0f) | ((u1 >> 2) & 0x30303030);
  *sc = sc_lo | uint64_t{sc_hi} << 32;
  *mn = m_lo | uint64_t{m_hi} << 32;
}

// Weight i (0..255) of a K-quant super-block of type t as its unsigned quant: 0..15 (Q4_K), 0..31
// (Q5_K), 0..63 (Q6_K, whose weight is scale * (quant - 32)).
int kquant_quant(DType t, const uint8_t* block, int i);

// n weights (a multiple of kKBlock) of K-quant type t at src to f32.
void dequantize_kquant_row(DType t, const void* src, float* dst, int64_t n);
// n f32 values to K-quant type t. Each sub-block's scale (and Q4_K/Q5_K's min) is chosen by a
// small search minimizing the squared error of the rounded weights, then refit by least squares;
// the super-block's scales are quantized and the weights rounded against those.
void quantize_kquant_row(DType t, const float* src, void* dst, int64_t n);

}  // namespace rme
