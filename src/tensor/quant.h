// tensor: reference conversions between f32 and every storage dtype (row at a time).
#pragma once

#include <cstdint>
#include <span>

#include "tensor/dtype.h"

namespace rme {

// Converts n f32 values into dtype t at dst (dtype_row_bytes(t, n) bytes). Quantization follows
// GGUF: Q8_0 d = max|x|/127; Q4_0 d = (value of largest magnitude)/-8, q = round(x/d)+8 clamped;
// K-quants: kquant.h.
void quantize_row(DType t, const float* src, void* dst, int64_t n);
// Converts n elements of dtype t at src into f32.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

}  // namespace rme
