// kernels: the opt-in bf16 products (KernelConfig::bf16) — BF16 weight rows times activations
// rounded to bf16, summed in f32; on AVX512-BF16 one vdpbf16ps is 32 multiply-adds.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernel_config.h"

namespace rme {

// Rounds n floats to bf16 (to nearest even; the AVX-512 kernel's conversion, like the
// instruction, flushes denormal inputs to zero). Single-threaded.
using Bf16RoundFn = void (*)(const float* x, int64_t n, uint16_t* out);

// Rows [0, n_rows) of BF16 weights (row_bytes apart) against n_tok tokens of bf16 activations
// (xb_stride elements apart): y[t * y_stride + r] = sum_i w[r][i] * xb[t][i], products exact
// and summed in f32. One kernel for every n_tok: each output is computed by the same operations
// whatever the batch (tiles of 4 rows x 3 tokens, two accumulator chains per output, one row at
// a time for one token), so the mode is batch-invariant by construction. Any k (a masked last
// step). Single-threaded.
using Bf16RowsFn = void (*)(const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint16_t* xb,
                            int64_t xb_stride, int64_t n_tok, int64_t k, float* y,
                            int64_t y_stride);

struct Bf16Kernels {
  Bf16RoundFn round;
  Bf16RowsFn rows;
  // The same products over whole 16-row groups of the interleaved layout (interleave.h: a BF16
  // block is a pair of elements; n_rows a multiple of 16, k even), row_bytes = one row's bytes.
  // Each output is one accumulator over the pairs in order (no horizontal sum): other bits than
  // `rows` gives for the same row, the same for every batch.
  Bf16RowsFn groups;
};

// The kernels of cfg when cfg.bf16 is on and its ISA has them (AVX-512 with AVX512-BF16), else
// nullptr: matmul then runs BF16 weights with f32 activations, the default.
const Bf16Kernels* bf16_kernels(const KernelConfig& cfg);
const Bf16Kernels& bf16_kernels_avx512();

// The reference: a double-precision sum of the same bf16 products (rounding by tensor/half.h).
void bf16_round_ref(const float* x, int64_t n, uint16_t* out);
void bf16_rows_ref(const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint16_t* xb,
                   int64_t xb_stride, int64_t n_tok, int64_t k, float* y, int64_t y_stride);

}  // namespace rme
