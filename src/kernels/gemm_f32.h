// kernels: prefill matrix product for float weights (F32 / F16 / BF16) on repacked row panels.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rme {

using RowToF32Fn = void (*)(const void* w, float* out, int64_t k);
using RowDotF32Fn = float (*)(const void* a, const float* b, int64_t k);

// Tokens are first packed (transposed per tile of gemm_f32_tile_tokens() tokens) into xp, which
// holds gemm_f32_packed_floats(n_tok, k) floats; callers may split the tokens
// across threads at tile boundaries: gemm_f32_pack_tokens(t0, t1) packs tokens t0 .. t1 - 1, t0
// a multiple of the tile.
int64_t gemm_f32_tile_tokens();
int64_t gemm_f32_packed_floats(int64_t n_tok, int64_t k);
void gemm_f32_pack_tokens(const float* x, int64_t x_stride, int64_t t0, int64_t t1, int64_t k,
                          float* xp);

// y[t * y_stride + r] = row r of w (n_rows rows of row_bytes, decoded by to_f32) . x[t] for every
// r < n_rows and t < n_tok, reading the tokens from xp (packed) and, for rows beyond whole
// 16-row groups, from x with `dot` (an f32 dot kernel). Single-threaded (callers split rows;
// whole 32-row units run fastest). Sums in a different order than a dot product, so results agree
// with one to float rounding, not bit for bit. Requires AVX-512F; callers check the active ISA.
void gemm_f32_avx512(RowToF32Fn to_f32, RowDotF32Fn dot, const uint8_t* w, size_t row_bytes,
                     int64_t n_rows, int64_t k, const float* x, int64_t x_stride, const float* xp,
                     int64_t n_tok, float* y, int64_t y_stride);

}  // namespace rme
