// tensor: scalar reference quantizers (the kernels' SIMD dequantizers are tested against these).
#include "tensor/quant.h"

#include <cmath>
#include <cstring>

#include "core/check.h"
#include "tensor/half.h"
#include "tensor/kquant.h"

namespace rme {
namespace {

void quantize_q8_0(const float* x, Q8_0Block* out, int64_t n) {
  for (int64_t b = 0; b < n / kQBlock; ++b) {
    const float* v = x + b * kQBlock;
    float amax = 0;
    for (int i = 0; i < kQBlock; ++i) amax = std::max(amax, std::fabs(v[i]));
    float d = amax / 127.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    for (int i = 0; i < kQBlock; ++i) out[b].q[i] = static_cast<int8_t>(std::lround(v[i] * id));
  }
}

void quantize_q4_0(const float* x, Q4_0Block* out, int64_t n) {
  for (int64_t b = 0; b < n / kQBlock; ++b) {
    const float* v = x + b * kQBlock;
    float amax = 0, max = 0;
    for (int i = 0; i < kQBlock; ++i) {
      if (std::fabs(v[i]) > amax) {
        amax = std::fabs(v[i]);
        max = v[i];
      }
    }
    float d = max / -8.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    for (int j = 0; j < kQBlock / 2; ++j) {
      auto q = [&](float f) {
        int r = static_cast<int>(f * id + 8.5f);
        return static_cast<uint8_t>(r < 0 ? 0 : (r > 15 ? 15 : r));
      };
      out[b].q[j] = static_cast<uint8_t>(q(v[j]) | (q(v[j + kQBlock / 2]) << 4));
    }
  }
}

}  // namespace

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  RME_CHECK(n % dtype_block_size(t) == 0);
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(src[i]);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]);
      return;
    case DType::kQ8_0:
      quantize_q8_0(src, static_cast<Q8_0Block*>(dst), n);
      return;
    case DType::kQ4_0:
      quantize_q4_0(src, static_cast<Q4_0Block*>(dst), n);
      return;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      quantize_kquant_row(t, src, dst, n);
      return;
  }
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  RME_CHECK(n % dtype_block_size(t) == 0);
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(static_cast<const uint16_t*>(src)[i]);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      return;
    case DType::kQ8_0: {
      const auto* blocks = static_cast<const Q8_0Block*>(src);
      for (int64_t b = 0; b < n / kQBlock; ++b) {
        float d = f16_to_f32(blocks[b].d);
        for (int i = 0; i < kQBlock; ++i) dst[b * kQBlock + i] = d * blocks[b].q[i];
      }
      return;
    }
    case DType::kQ4_0: {
      const auto* blocks = static_cast<const Q4_0Block*>(src);
      for (int64_t b = 0; b < n / kQBlock; ++b) {
        float d = f16_to_f32(blocks[b].d);
        for (int j = 0; j < kQBlock / 2; ++j) {
          dst[b * kQBlock + j] = d * (static_cast<int>(blocks[b].q[j] & 0x0f) - 8);
          dst[b * kQBlock + j + kQBlock / 2] = d * (static_cast<int>(blocks[b].q[j] >> 4) - 8);
        }
      }
      return;
    }
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      dequantize_kquant_row(t, src, dst, n);
      return;
  }
}

}  // namespace rme
