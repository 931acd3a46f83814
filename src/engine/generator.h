// engine: Generator, single-sequence text generation (prefill, then sample-and-decode).
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "engine/sampler.h"
#include "model/forward.h"
#include "tokenizer/tokenizer.h"

namespace rme {

struct GenerationStats {
  int n_prompt = 0;
  double prompt_seconds = 0;
  int n_generated = 0;
  double gen_seconds = 0;
  double prompt_tps() const { return prompt_seconds > 0 ? n_prompt / prompt_seconds : 0; }
  double gen_tps() const { return gen_seconds > 0 ? n_generated / gen_seconds : 0; }
};

struct GenerationLimits {
  int max_total = 256;  // stop when the sequence holds this many tokens (llama2.c's -n); 0 = off
  int max_new = 0;      // stop after this many new tokens; 0 = off
  bool stop_at_eos = true;  // EOS, any extra EOS id, or a BOS that would start a new document
};

// Borrows the model, tokenizer and pool; owns the KV cache, forward buffers and sampler.
// Not thread-safe.
class Generator {
 public:
  Generator(const Model& model, const Tokenizer& tokenizer, ThreadPool& pool, int n_ctx,
            const KernelConfig& kernels = KernelConfig::best());

  // Runs the prompt ids (BOS included if wanted), then samples. on_token(id) is called for each
  // new token; returning false stops. Fails if the prompt does not fit the context.
  Forward& forward() { return forward_; }  // e.g. to choose an MoE's routing

  Result<GenerationStats> generate(std::span<const int> prompt, const GenerationLimits& limits,
                                   const SamplingParams& params,
                                   const std::function<bool(int)>& on_token);

 private:
  const Model& model_;
  const Tokenizer& tokenizer_;
  int n_ctx_;
  KvCache kv_;
  Forward forward_;
  std::vector<float> logits_;
};

}  // namespace rme
