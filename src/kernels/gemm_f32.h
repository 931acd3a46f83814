// kernels: prefill matrix product for float weights (F32 / F16 / BF16) on repacked row panels.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rme {

using RowToF32Fn = void (*)(const void* w, float* out, int64_t k);
using RowDotF32Fn = float (*)(const void* a, const float* b, int64_t k);

// y[t * y_stride + r] = row r of w (n_rows rows of row_bytes, decoded by to_f32) . x[t] for every
// r < n_rows and t < n_tok. Single-threaded (callers split rows; whole 32-row units run fastest).
// Rows beyond whole 16-row groups use `dot` (an f32 dot kernel). Sums in a different order than
// a dot product, so results agree with one to float rounding, not bit for bit. Requires AVX-512F;
// callers check the active ISA.
void gemm_f32_avx512(RowToF32Fn to_f32, RowDotF32Fn dot, const uint8_t* w, size_t row_bytes,
                     int64_t n_rows, int64_t k, const float* x, int64_t x_stride, int64_t n_tok,
                     float* y, int64_t y_stride);

}  // namespace rme
