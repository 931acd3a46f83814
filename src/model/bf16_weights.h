// model: converting a loaded model's float matrices to BF16 rows for the opt-in bf16 products.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/weights.h"

namespace rme {

struct Bf16Report {
  int64_t matrices = 0;   // matrices converted
  size_t bytes = 0;       // their bytes as BF16, now in the model's own buffers
  size_t bytes_from = 0;  // the same matrices' bytes before (F16: equal; F32: twice)
};

// Rewrites every F16 and F32 matrix of `m` that matmul multiplies (attention, FFN, experts,
// output) as BF16 rows (round to nearest even) in buffers the model owns, and gives the source
// pages back to the system (MappedFile::release). For KernelConfig::bf16, whose products then
// run on them (kernels/gemm_bf16.h); a lossy, opt-in conversion: F16 keeps 11 significant bits,
// BF16 8. Not converted: the token embedding (lookups keep the file's precision; a tied output
// gets its own copy), norms, the router, and with skip_routed_experts the routed experts (an
// ExpertStore reads those from the file: they run the F16 kernels). Call before any reader of
// `m` starts. Fails only on memory.
Result<Bf16Report> bf16_weights(Model& m, bool skip_routed_experts, ThreadPool& pool);

}  // namespace rme
