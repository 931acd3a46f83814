// model: Forward, the dense Llama forward pass over a chunk of tokens of one sequence.
#pragma once

#include <span>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace rme {

// Holds activation buffers preallocated for up to max_tokens tokens per call, so steady-state
// decoding allocates nothing. Borrows the Model (must outlive it) and the pool. Not thread-safe:
// one Forward per engine thread. Fails (Status) on positions past the cache or bad token ids.
class Forward {
 public:
  Forward(const Model& model, int max_tokens, ThreadPool& pool);

  // Runs tokens at positions pos .. pos+T-1, appending their K/V to kv. Writes logits [T, V]
  // when all_logits, else only the last token's [V]. T may exceed max_tokens (chunked).
  Status run(std::span<const int> tokens, int pos, KvCache& kv, float* logits, bool all_logits);

  const Model& model() const { return model_; }

 private:
  void run_chunk(const int* tokens, int n_tok, int pos, KvCache& kv, float* logits,
                 bool all_logits);

  const Model& model_;
  ThreadPool& pool_;
  int max_tokens_;
  std::vector<float> inv_freq_;
  // Activations, row-major with max_tokens_ rows.
  std::vector<float> x_, xb_, q_, k_, v_, att_, gate_, up_;
  std::vector<float> scratch_;  // per-thread attention scores (grows on first use per cache size)
};

}  // namespace rme
