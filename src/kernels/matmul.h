// kernels: y = x · Wᵀ for weights of any storage dtype, f32 activations; ISA-dispatched.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/cpu.h"
#include "kernels/kernel_config.h"
#include "tensor/dtype.h"

namespace rme {

// The per-ISA building blocks. Each ISA file fills one table; matmul.cc picks the table once.
// `k` is the row length in elements, a multiple of the dtype's block. K-quant rows decode with the
// scalar reference in every table: their fast path is the integer kernel (dot_kquant.h), these
// serve the f32-activation mode (int8 off) and embedding lookups.
struct RowKernels {
  // dot(W row of dtype t, x[k]) -> float
  float (*dot[kDTypeCount])(const void* w, const float* x, int64_t k);
  // W row of dtype t -> out[k] f32
  void (*to_f32[kDTypeCount])(const void* w, float* out, int64_t k);
};

const RowKernels& row_kernels_ref();
const RowKernels& row_kernels_avx2();
const RowKernels& row_kernels_avx512();
const RowKernels& row_kernels_neon();
const RowKernels& row_kernels(Isa isa);

// Rows [0, n_rows) of w (row_bytes apart) against n_tok tokens: y[t * y_stride + r] = dot(row r,
// x + t * x_stride), each output bit-identical whatever n_tok is (tiles of 4 rows x 3 tokens
// computing every output with a one-token call's operations: float_dot_impl.h; on AVX2 and NEON
// also RowKernels::dot's) — the batch-invariant float path, and decode's, which reads each
// weight once per call. Single-threaded.
using FloatRowsFn = void (*)(const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x,
                             int64_t x_stride, int64_t n_tok, int64_t k, float* y,
                             int64_t y_stride);
// The kernel of `isa` for F32/F16/BF16, or nullptr (other types, and the scalar ISA, whose
// batch-invariant mode dots each token separately: docs/performance.md).
FloatRowsFn float_rows(Isa isa, DType t);
FloatRowsFn float_rows_avx2(DType t);
FloatRowsFn float_rows_avx512(DType t);
FloatRowsFn float_rows_neon(DType t);
// F16 matrices in the interleaved layout (interleave.h), whole 16-row groups (n_rows a multiple of
// 16): one accumulator per output over the elements in order, so other bits than float_rows for
// the same row, the same for every batch. The kernel of cfg, or nullptr (not AVX-512, or another
// type); the rows after a matrix's groups run float_rows.
FloatRowsFn float_groups(const KernelConfig& cfg, DType t);
void f16_groups_avx512(const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x,
                       int64_t x_stride, int64_t n_tok, int64_t k, float* y, int64_t y_stride);

// How a matrix's bytes are ordered. kRows: row after row (every file format). kRows16: Q4_0 /
// Q8_0 rows interleaved 16 at a time (interleave.h), made at load for the kernels that read it
// fastest; only matmul reads it (writers, embedding lookups and slicing need kRows).
enum class WeightLayout : uint8_t { kRows, kRows16 };

// Weight view for matmul: n_out rows of n_in elements of `dtype`, row-major, rows contiguous
// (or interleaved, per `layout`: same bytes in all).
struct MatView {
  DType dtype;
  int64_t n_out;
  int64_t n_in;
  const void* data;
  WeightLayout layout = WeightLayout::kRows;
};

// y[T, n_out] = x[T, n_in] · W[n_out, n_in]ᵀ. x, y row-major f32 with the given row strides
// (in floats). Splits output rows across the pool. Kernels are cfg's (ISA, int8, batch
// invariance, BLAS). K-quants with int8 on AVX2/AVX-512 CPUs run integer kernels, one for every T
// in the batch-invariant mode (dot_kquant.h's gemm_kquant). On AVX2 with int8, Q4_0 and Q8_0 run
// one integer kernel for every T (decode, prefill and batch invariance: gemm_q8_invariant); on
// AVX-512 VNNI that kernel's counterpart runs decode (T <= 2) and the batch-invariant mode.
// Otherwise, for T >= 4 tokens this is a matrix product that reads each weight row once: on
// AVX-512, Q4_0/Q8_0 as an integer product on repacked panels (gemm_q8_best) and float types as an
// f32 product on repacked panels (gemm_f32.h); on AVX2, OpenBLAS sgemm on decoded panels when
// loaded, else decoded rows dotted per token.
void matmul(const KernelConfig& cfg, const MatView& w, const float* x, int64_t x_stride,
            int64_t n_tok, float* y, int64_t y_stride, ThreadPool& pool);

// BF16 weights under KernelConfig::bf16 (AVX512-BF16) run the bf16 products of gemm_bf16.h for
// every T: activations rounded to bf16, one kernel for any batch (so batch-invariant in either
// mode).
//
// Batch-invariant mode (KernelConfig::batch_invariant): each token's row of y is computed exactly
// as a one-token call would compute it (same kernel, same accumulation order), so a request's
// logits do not depend on which other tokens share the step. AVX2, AVX-512 and NEON float types
// run float_rows (4 rows x 3 tokens per tile, decode's own kernel); Q4_0 and Q8_0 on AVX2 and
// AVX-512 VNNI their one integer kernel (gemm_q8_invariant); elsewhere the one-token kernel per
// token. Matrices in the interleaved layout (WeightLayout::kRows16, interleave.h) run one kernel
// for every T in both modes (AVX-512 VNNI: Q4_0, Q8_0 and K-quants; elsewhere their rows are
// restored first). Either way weights come from memory
// once per call; the cost against the fastest path is in docs/performance.md. The serving engine
// runs with it on.

// Single-threaded f32 dot product with `isa`'s kernel.
float dot_f32(Isa isa, const float* a, const float* b, int64_t k);

}  // namespace rme
