// model: models with random weights (benchmarks and timing models, which cannot download real
// large checkpoints) and the named architecture shapes they use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/weights.h"

namespace rme {

// "tinyllama" (TinyLlama-1.1B: D 2048, 22 layers, 32 heads, 4 KV heads, FFN 5632, vocab 32000),
// "llama2-7b" (D 4096, 32 layers, 32 heads, FFN 11008, vocab 32000), "rme-mini".
Result<LlamaConfig> named_shape(const std::string& name);
std::vector<std::string> shape_names();

// A model of config `c` whose matrices are uniform random with standard deviation 0.02 stored as
// `type` (quantized types: quantized from the random f32 rows; rows too short for the type's
// block fall back as dtype_for_row says), norms 1, RoPE interleaved. Deterministic for a seed
// whatever the thread count. Marked random_weights. Owns its buffers.
Model random_model(const LlamaConfig& c, DType type, uint64_t seed, ThreadPool& pool);

// A Read-ME-shaped MoE with random weights (timing models): shared expert of round(F * shared)
// channels and n_expert experts of round(F * active) - shared channels each (multiples of 32),
// synthetic channel lists, and a random router of the default shape (router_init.h's rule).
Model random_moe(const LlamaConfig& c, int n_expert, double active, double shared, DType type,
                 uint64_t seed, ThreadPool& pool);

// A [rows, cols] random matrix of `type` owned by m (the same generator).
MatView random_matrix(Model& m, int64_t rows, int64_t cols, DType type, uint64_t seed,
                      ThreadPool& pool);

}  // namespace rme
