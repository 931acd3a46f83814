// engine: BatchEngine, the executor of continuous batching: many requests sharing a paged KV
// cache run a step at a time from a RequestTable's chunks. The router runs on a prompt at
// admission and on each sampled token right after sampling, so every pending token's expert is
// known to the scheduler.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "engine/sampler.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "scheduler/request_table.h"

namespace rme {

inline constexpr int kMaxTopLogprobs = 20;  // alternatives reported per token, at most

struct RequestParams {
  std::vector<int> prompt;    // token ids, BOS included if wanted
  int max_new = 16;           // tokens to generate at most
  SamplingParams sampling;    // temperature 0 = greedy
  bool ignore_eos = false;    // generate exactly max_new tokens (benchmarks)
  std::vector<int> stop_ids;  // end-of-sequence ids (the tokenizer's EOS set)
  int logprobs = -1;  // >= 0: report each sampled token's log-probability and this many top ones
  std::shared_ptr<TokenWatcher> watch;  // stop rules past the ids (StopRules::watch), optional
};

struct BatchEngineOptions {
  int block_size = 16;
  int n_block = 0;  // KV blocks; 0 = enough for 8 sequences of max_seq_len
  int max_step_tokens = 256;
  int max_seq_len = 0;  // prompt + output per request; 0 = the model's context
  // The kernels every step runs with: batch-invariant unless told otherwise, so a request's output
  // does not depend on which requests share its steps (rme serve --fast-prefill turns it off).
  KernelConfig kernels = [] {
    KernelConfig k = KernelConfig::best();
    k.batch_invariant = true;
    return k;
  }();
};

// The executor of a RequestTable's steps: owns the paged KV memory (the table owns which block
// is whose), the Forward, and what sampling and routing keep per request (sampler state, the
// router's KV cache), keyed by request id and dropped once the table no longer has the id. It
// keeps no request bookkeeping of its own. Borrows the model and pool. Not thread-safe: one
// serving thread drives it. Bad requests fail admit() with a Status; nothing a request carries
// can abort the process.
class BatchEngine {
 public:
  BatchEngine(const Model& model, ThreadPool& pool, const BatchEngineOptions& options);
  ~BatchEngine();

  // Routing for an MoE (router, random or fixed); dense models ignore it.
  Status set_routing(const RoutingOptions& options) { return forward_.set_routing(options); }
  // An empty table sized for this engine's KV cache and routing (after set_routing).
  RequestTable make_table() const;
  // The one check of a request against this engine: fails (invalid_argument, naming the field)
  // on an empty prompt, prompt + max_new past the context, a request that could never fit the KV
  // cache, bad token ids, logit_bias ids or sampling parameters. Reads only what construction
  // fixed, so any thread may call it (the HTTP side answers 400 before a stream starts).
  Status validate(const RequestParams& request) const;
  // validate(), then routes the prompt and adds the request to the table.
  Result<int64_t> admit(const RequestParams& request, int64_t arrival, int64_t step,
                        RequestTable* table);
  int max_step_tokens() const { return forward_.max_tokens(); }

  // Runs `chunks` (what table.apply(plan) returned) as one batch, samples where a chunk wants
  // logits, routes each sampled token the stop rules let go on, and appends one event per
  // sampled request for table.apply(outputs). expert_table: where routed experts' weights are
  // (see Forward::set_expert_table).
  Status execute(const RequestTable& table, std::span<const StepChunk> chunks,
                 std::vector<const ExpertWeights*> expert_table, std::vector<TokenEvent>* events);

 private:
  struct PerRequest {
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<KvCache> router_kv;
    int logprobs = -1;
  };

  const Model& model_;
  BatchEngineOptions options_;
  PagedKv kv_;
  Forward forward_;
  std::map<int64_t, PerRequest> per_request_;
  std::vector<float> logits_;
  std::vector<SeqChunk> chunks_;
};

}  // namespace rme
