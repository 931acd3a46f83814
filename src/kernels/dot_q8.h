// kernels: integer dot products of Q8_0 / Q4_0 weight rows with activations quantized on the fly
// to 8 bits per 32-element block — decode's hot loop for quantized models (AVX-512 VNNI, AVX2),
// with a scalar reference they are tested against.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernel_config.h"
#include "tensor/dtype.h"

namespace rme {

// x quantized per block of 32: q = round(x / d), d = max|x| / 127, plus each block's sum of q
// (integer kernels use unsigned weights and correct with it). Owns its buffers; reuse one per
// thread so steady-state decoding allocates nothing.
struct Q8Activations {
  std::vector<int8_t> q;
  std::vector<float> d, sum;
  void quantize(const float* x, int64_t k, Isa isa);  // k a multiple of 32; SIMD on AVX2/AVX-512
  void quantize_ref(const float* x, int64_t k);  // the scalar reference: quantize equals it exactly
  void resize(int64_t k);                        // buffers for k values (k / 32 blocks)
};

using DotQ8Fn = float (*)(const void* w, const int8_t* q, const float* d, const float* sum,
                          int64_t k);

// The scalar reference (exact integer block sums, scaled in f32).
DotQ8Fn dot_q8_ref(DType weights);
// KernelConfig::int8 decides whether quantized weights meet int8 activations: prefill of Q4_0 and
// Q8_0 (integer matrix product on repacked 16-row panels, 2.5-4x the sgemm path) and their decode
// (Q4_0 1.7x, Q8_0 1.45x on llama2-7b: its f32 activations spill out of L1 at K = 11008).

// Every per-row integer kernel for `weights` this CPU can run, whatever the config (tests
// compare each with the reference): the VNNI ones, NEON's; may be empty (AVX2 has none: its one
// kernel is gemm_q8_invariant's).
std::vector<DotQ8Fn> dot_q8_all(DType weights);

// The fastest per-row kernel `cfg` allows for `weights` (VNNI when its ISA is AVX-512 on a VNNI
// CPU, NEON's on a DotProd CPU), or nullptr: decode then keeps f32 activations, or (AVX2) runs
// gemm_q8_invariant.
DotQ8Fn dot_q8_best(const KernelConfig& cfg, DType weights);

// Prefill as an integer matrix product: y[t * y_stride + r] = row r of w (n_rows rows of
// row_bytes, Q4_0 or Q8_0) . token t (xs[t], quantized) for every r and t < n_tok.
// Single-threaded (callers split rows; whole 32-row units run fastest, since rows are repacked in
// 16-row panels and tiles take two). Agrees with dot_q8_ref to float rounding.
using GemmQ8Fn = void (*)(const uint8_t* w, size_t row_bytes, int64_t n_rows,
                          const Q8Activations* xs, int64_t n_tok, int64_t k, float* y,
                          int64_t y_stride);
// An integer product whose every output is bit-identical whatever n_tok is (1 included) and fast
// for one token too: one kernel for decode, prefill and batch invariance. The AVX2 Q4_0 / Q8_0
// kernel (gemm_int8_avx2.cc: 8-row interleaved groups) when cfg's ISA is AVX2 with int8 on; the
// AVX-512 VNNI one (gemm_int8_avx512.cc: 16-row groups) when cfg is AVX-512 with int8 and
// batch_invariant on (outside that mode AVX-512 prefill keeps its faster panels); else nullptr.
// Single-threaded, like GemmQ8Fn; callers split rows in units of 8 (AVX2) or 16 (AVX-512).
GemmQ8Fn gemm_q8_invariant(const KernelConfig& cfg, DType weights);
// The kernel for one or two tokens where a one-kernel product beats per-row dot products: the
// AVX-512 VNNI one above whatever the mode (Zen 5, tinyllama decode: Q4_0 82 vs 69-71 tok/s,
// Q8_0 54-55 vs 39-48), else nullptr. Units of 16 rows.
GemmQ8Fn gemm_q8_decode(const KernelConfig& cfg, DType weights);
// The AVX-512 VNNI kernel for `weights` when this CPU has VNNI, cfg's ISA is AVX-512 and int8 on.
GemmQ8Fn gemm_q8_best(const KernelConfig& cfg, DType weights);
// The same kernel family over matrices in the 16-row interleaved form (interleave.h): `w` the
// first of n_rows / 16 whole groups (n_rows a multiple of 16), each output bit-identical to
// gemm_q8_decode's and gemm_q8_invariant's on the rows, whatever n_tok is. AVX-512 VNNI with int8
// (interleave_helps), else nullptr.
GemmQ8Fn gemm_q8_interleaved(const KernelConfig& cfg, DType weights);

}  // namespace rme
