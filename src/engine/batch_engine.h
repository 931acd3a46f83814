// engine: BatchEngine, many sequences sharing a paged KV cache, run a step at a time from a
// scheduler's plan (continuous batching). The router runs on a prompt at admission and on each
// sampled token right after sampling, so every pending token's expert is known to the scheduler.
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
#include "scheduler/schedule.h"

namespace rme {

inline constexpr int kMaxTopLogprobs = 20;  // alternatives reported per token, at most

struct RequestParams {
  std::vector<int> prompt;    // token ids, BOS included if wanted
  int max_new = 16;           // tokens to generate at most
  SamplingParams sampling;    // temperature 0 = greedy
  bool ignore_eos = false;    // generate exactly max_new tokens (benchmarks)
  std::vector<int> stop_ids;  // end-of-sequence ids (the tokenizer's EOS set)
  int logprobs = -1;  // >= 0: report each sampled token's log-probability and this many top ones
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", ...

// One output of a step: a sampled token of request id, and whether it ended the request.
struct TokenEvent {
  int64_t id;
  int token;  // -1 when the request ended without a new token (e.g. an error)
  FinishReason finish = FinishReason::kNone;
  // With RequestParams::logprobs >= 0: log p(token) over the biased, penalized logits (before
  // temperature and truncation), and the most likely tokens with theirs.
  float logprob = 0.0f;
  std::vector<std::pair<int, float>> top;
  Status error;  // why, when finish is kError
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

// Owns the paged KV cache, each live request's state (tokens, routed experts, block table,
// router cache, sampler) and the Forward. Borrows the model and pool. Not thread-safe: one
// serving thread drives it. Bad requests fail add() with a Status; nothing a request carries can
// abort the process.
class BatchEngine {
 public:
  BatchEngine(const Model& model, ThreadPool& pool, const BatchEngineOptions& options);
  ~BatchEngine();

  // Routing for an MoE (router, random or fixed); dense models ignore it.
  Status set_routing(const RoutingOptions& options) { return forward_.set_routing(options); }
  // Admits a request (routes its prompt). Fails on an empty or too long prompt, bad token ids
  // or sampling parameters, or a request that could never fit the KV cache.
  Result<int64_t> add(const RequestParams& request, int64_t arrival, int64_t step);
  // Ends a request and frees its blocks; unknown ids are ignored.
  void cancel(int64_t id);

  // What the scheduler needs, one entry per live request.
  std::vector<SeqInfo> seq_infos() const;
  int free_blocks() const { return static_cast<int>(free_.size()); }
  int n_block() const { return kv_.n_block(); }
  int block_size() const { return kv_.block_size(); }
  size_t live() const { return seqs_.size(); }
  int max_step_tokens() const { return forward_.max_tokens(); }
  // Distinct routed experts the plan's tokens use (all top-k choices), ascending.
  std::vector<int> plan_experts(const StepPlan& plan) const;

  // Preempts, runs the plan's chunks as one batch, samples where a request's known tokens are
  // all computed, routes the new tokens, and appends what happened to events. Finished requests
  // are removed. expert_table: where routed experts' weights are (see Forward::set_expert_table).
  Status execute(const StepPlan& plan, int64_t step, std::vector<const ExpertWeights*> expert_table,
                 std::vector<TokenEvent>* events);

 private:
  struct Seq;
  void release(Seq& s);

  const Model& model_;
  BatchEngineOptions options_;
  int max_seq_len_;
  PagedKv kv_;
  Forward forward_;
  std::vector<int> free_;  // free block ids
  std::map<int64_t, std::unique_ptr<Seq>> seqs_;
  int64_t next_id_ = 0;
  std::vector<float> logits_;
  std::vector<SeqChunk> chunks_;
};

}  // namespace rme
