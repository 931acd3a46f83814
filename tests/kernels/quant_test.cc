// tests/kernels: f16/bf16 conversions and Q8_0/Q4_0 quantization error bounds.
#include "tensor/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tensor/half.h"

namespace rme {
namespace {

TEST(HalfTest, KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);                   // overflow -> inf
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x4049), 3.140625f);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
}

TEST(HalfTest, RoundTripIsExactForRepresentableValues) {
  for (uint32_t h = 0; h < 0x7c00; ++h)
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h);
}

TEST(QuantTest, ErrorWithinHalfAStep) {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> d(0, 2);
  std::vector<float> x(256), y(256);
  for (auto& v : x) v = d(rng);
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    std::vector<uint8_t> q(dtype_row_bytes(t, 256));
    quantize_row(t, x.data(), q.data(), 256);
    dequantize_row(t, q.data(), y.data(), 256);
    for (int b = 0; b < 8; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
      // Q8_0 rounds to the nearest of 255 levels: half a step. Q4_0 maps the largest magnitude to
      // -8, so values of the other sign near it clamp at +7: up to a full step.
      float bound = t == DType::kQ8_0 ? 0.5f * amax / 127 : amax / 8;
      for (int i = 0; i < 32; ++i)
        EXPECT_LE(std::fabs(x[b * 32 + i] - y[b * 32 + i]), bound + 1e-3f * amax);
    }
  }
}

}  // namespace
}  // namespace rme
