// model: rewriting a loaded model's quantized matrices into the layout its kernels read fastest.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/kernel_config.h"
#include "model/weights.h"

namespace rme {

struct InterleaveReport {
  int64_t matrices = 0;  // matrices rewritten
  size_t bytes = 0;      // their bytes, now in the model's own buffers
};

// Rewrites every matrix of `m` that kernels/interleave.h's interleaved form makes faster under
// `cfg` (interleave_helps: Q4_0 / Q8_0 on AVX-512 VNNI) into that form, in buffers the model owns,
// and gives the source pages back to the system (MappedFile::release), so memory stays about one
// copy of the model. Outputs are bit-identical to the rows' under the batch-invariant and decode
// kernels (tested). Not rewritten: the token embedding (lookups read rows; a tied output gets its
// own copy), the router, and with skip_routed_experts the routed experts (an ExpertStore reads
// them from the file). Afterwards `m` is for inference only: writers refuse interleaved views.
// A no-op under other configs. Call before any reader of `m` starts, after detaching or faulting
// in its files (which would otherwise bring the released pages back). Fails only on memory.
Result<InterleaveReport> interleave_weights(Model& m, const KernelConfig& cfg,
                                            bool skip_routed_experts, ThreadPool& pool);

}  // namespace rme
