// kernels: integer products of K-quant weight rows (Q4_K, Q5_K, Q6_K) with activations quantized
// to 8 bits per 256-element super-block — decode and prefill for llama.cpp's K-quant files (AVX2,
// AVX-512 VNNI),
// with the scalar reference they are tested against.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernel_config.h"
#include "tensor/dtype.h"

namespace rme {

// x quantized per super-block of 256: q = round(x / d), d = max|x| / 127, plus the sum of q over
// each 16 elements (the K-quants' mins and offsets are applied through these sums, so a weight
// sub-block's integer product needs no per-element correction). One scale per 256 rather than
// Q8Activations' per 32: the sub-blocks' integer sums, each times its integer scale, then add up
// exactly and meet floats once per super-block. Owns its buffers; reuse one per thread.
struct Q8KActivations {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int16_t> bsum;
  // k a multiple of 256; AVX2 when isa is AVX2 or AVX-512, equal to quantize_ref bit for bit.
  void quantize(const float* x, int64_t k, Isa isa);
  void quantize_ref(const float* x, int64_t k);
  void resize(int64_t k);
};

// The AVX2 quantizer of one super-block (q: 256 bytes, bsum: 16 sums); returns d.
float quantize_q8k_block_avx2(const float* x, int8_t* q, int16_t* bsum);

// y[t * y_stride + r] = row r of w (n_rows rows of row_bytes, K-quant `weights`) . token t (xs[t])
// for every r and t < n_tok. Single-threaded; callers split rows (any split).
using GemmKFn = void (*)(const uint8_t* w, size_t row_bytes, int64_t n_rows,
                         const Q8KActivations* xs, int64_t n_tok, int64_t k, float* y,
                         int64_t y_stride);

// A kernel file's table: the instance of its K-quant template for `weights`, as
// `pick.template operator()<T>()` (e.g. `[]<DType T>() -> GemmKFn { return gemm<T>; }`), or
// nullptr for a type that is not a K-quant.
template <typename Pick>
GemmKFn kquant_instance(DType weights, const Pick& pick) {
  switch (weights) {
    case DType::kQ4_K:
      return pick.template operator()<DType::kQ4_K>();
    case DType::kQ5_K:
      return pick.template operator()<DType::kQ5_K>();
    case DType::kQ6_K:
      return pick.template operator()<DType::kQ6_K>();
    default:
      return nullptr;
  }
}

// The scalar reference: each super-block's integer sums exact, scaled and accumulated in double.
GemmKFn gemm_kquant_ref(DType weights);
// The kernel for cfg and a call of n_tok tokens, or nullptr when int8 is off (f32 activations
// through RowKernels). Each kernel's every output is bit-identical whatever n_tok is; in the
// batch-invariant mode one kernel serves every n_tok (the AVX2 one on AVX2 and AVX-512 CPUs).
// Outside it, an AVX-512 VNNI CPU runs the AVX-512 kernel from kAvx512KquantMinTokens tokens
// (prefill: 2.7x the AVX2 kernel) and the AVX2 one below (decode, small batches: faster there).
// Both agree with the reference to float rounding.
GemmKFn gemm_kquant(const KernelConfig& cfg, DType weights, int64_t n_tok);
inline constexpr int64_t kAvx512KquantMinTokens = 8;
// AVX2 (gemm_kquant_avx2.cc): tokens in tiles of up to 4, each token's operations the same in
// any tile; any split of rows.
GemmKFn gemm_kquant_avx2(DType weights);
// AVX-512 VNNI (gemm_kquant_avx512.cc): 16-row groups packed once per call and reused by 4-token
// tiles; correct for any n_tok and any split of rows, fastest in units of 16 rows from 8 tokens.
GemmKFn gemm_kquant_avx512(DType weights);
// The AVX-512 VNNI kernel over matrices in the 16-row interleaved form (interleave.h): `w` the
// first of n_rows / 16 whole groups, every output bit-identical to gemm_kquant_avx512's on the
// rows whatever n_tok is (1 included): one kernel for decode, prefill and batch invariance.
// Returned when cfg is AVX-512 with int8 on a VNNI CPU (interleave_helps), else nullptr.
GemmKFn gemm_kquant_interleaved(const KernelConfig& cfg, DType weights);

}  // namespace rme
