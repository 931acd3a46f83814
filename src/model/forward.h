// model: Forward, the Llama forward pass over a chunk of tokens of one sequence — dense, or a
// Read-ME MoE whose experts are chosen per token before the backbone runs.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/kernel_config.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace rme {

// How an MoE picks each token's expert(s).
enum class Routing {
  kRouter,     // Read-ME: the pre-gating router over token ids (one decision for all layers)
  kOracle,     // the expert holding most of the dense parent's activation mass (needs `dense`)
  kRandom,     // uniform, a pure function of (seed, position, token)
  kFixed,      // always fixed_expert
  kLayerGate,  // a linear gate per layer on the hidden state (conventional MoE baseline)
};

struct RoutingOptions {
  Routing mode = Routing::kRouter;
  int top_k = 0;  // 0 = the model's own
  int fixed_expert = 0;
  uint64_t seed = 0;
  const Model* dense = nullptr;  // kOracle: the parent the experts were carved from
};

// Sees each chunk's choices: layer -1 for a decision shared by all layers, else the layer
// (kLayerGate). experts is [n_tok, k].
using RouteObserver = std::function<void(int layer, int pos, int n_tok, int k, const int* experts)>;
// Sees the down_proj input of the dense FFN / shared expert: act [n_tok, width].
using FfnProbe = std::function<void(int layer, int n_tok, const float* act, int64_t width)>;

// One sequence's part of a batched step (Forward::run_batch).
struct SeqChunk {
  std::span<const int> tokens;  // at positions pos .. pos + size - 1
  int pos = 0;
  KvView kv;                 // the sequence's cache, covering every position up to the last token
  bool want_logits = false;  // write the logits of the chunk's last token
  // MoE routed ahead of the backbone (router, random, fixed): size*k experts, weights empty = 1/k.
  std::span<const int> experts;
  std::span<const float> weights;
};

// Holds activation buffers preallocated for up to max_tokens tokens per call, so steady-state
// decoding allocates nothing. Borrows the Model (must outlive it) and the pool; runs every kernel
// with its own copy of `kernels` (a router or dense parent it steps uses the same). Not
// thread-safe: one Forward per engine thread. Fails (Status) on positions past the cache, bad token
// ids, or a routing mode the model cannot serve (no router, no layer gates, a mismatched dense
// parent).
class Forward {
 public:
  Forward(const Model& model, int max_tokens, ThreadPool& pool,
          const KernelConfig& kernels = KernelConfig::best());
  ~Forward();

  // Runs tokens at positions pos .. pos+T-1, appending their K/V to kv (a KvCache built from the
  // Model, so an MoE's router cache is there). Writes logits [T, V] when all_logits, else only
  // the last token's [V]. T may exceed max_tokens (chunked).
  Status run(std::span<const int> tokens, int pos, KvCache& kv, float* logits, bool all_logits);

  // Runs chunks of several sequences as one step: sum of their tokens <= max_tokens(). Each
  // token attends over its own sequence only. Writes one logits row [n_output] per chunk that
  // wants logits, in chunk order. An MoE needs every chunk's experts (route_tokens), except in
  // kLayerGate mode; kOracle is refused.
  Status run_batch(std::span<const SeqChunk> chunks, float* logits);

  // Routes tokens at positions pos.. without running the backbone: experts [n, k] and weights
  // [n, k], k = route_k(). kRouter steps the model's router on router_kv (a KvCache built from
  // model.router->config, holding this sequence's earlier tokens); kRandom and kFixed need no
  // cache. Fails for kOracle and kLayerGate, which need the backbone's activations.
  Status route_tokens(std::span<const int> tokens, int pos, KvCache* router_kv, int* experts,
                      float* weights);
  int route_k() const { return top_k_; }
  int max_tokens() const { return max_tokens_; }
  const RoutingOptions& routing() const { return routing_; }

  // Where routed experts' weights are read from: table[e] points at n_layer ExpertWeights (e.g. an
  // expert cache's resident copy); null entries, or an empty table, mean the model's own. The
  // table must stay valid through the next run.
  void set_expert_table(std::vector<const ExpertWeights*> table) {
    expert_table_ = std::move(table);
  }

  Status set_routing(const RoutingOptions& options);
  void set_route_observer(RouteObserver observer) { observer_ = std::move(observer); }
  void set_ffn_probe(FfnProbe probe) { probe_ = std::move(probe); }
  const Model& model() const { return model_; }
  const KernelConfig& kernels() const { return kernels_; }

 private:
  Status route(const int* tokens, int n_tok, int pos, KvCache* router_kv, int n_ctx, int* experts,
               float* weights);
  // Runs n_tok tokens: token t at position pos_[t] of sequence views_[view_[t]]; writes logits
  // for the rows listed in logit_rows_.
  void run_tokens(const int* tokens, int n_tok, float* logits);
  void layer_gate_route(const LayerWeights& L, int layer, int n_tok);
  void expert_ffn(const LayerWeights& L, int layer, int n_tok);

  const Model& model_;
  ThreadPool& pool_;
  const KernelConfig kernels_;
  int max_tokens_;
  std::vector<float> inv_freq_;
  // Activations, row-major with max_tokens_ rows.
  std::vector<float> x_, xb_, q_, k_, v_, att_, gate_, up_;
  std::vector<float> scratch_;  // per-thread attention scores (grows on first use per cache size)
  std::vector<int> pos_, view_, logit_rows_, batch_tokens_;  // per token of the step
  std::vector<KvView> views_;
  std::vector<const ExpertWeights*> expert_table_;

  // MoE state. route_expert_/route_weight_ are [max_tokens, k] for the chunk being run.
  RoutingOptions routing_;
  int top_k_ = 1;
  std::vector<int> route_expert_;
  std::vector<float> route_weight_, route_scores_;
  std::vector<float> xg_, eg_, eu_, eo_;  // gathered rows of one expert's tokens
  std::vector<int> slot_;                 // token*k+j of each gathered row
  std::unique_ptr<Forward> router_fwd_, dense_fwd_;
  std::unique_ptr<KvCache> dense_kv_;
  RouteObserver observer_;
  FfnProbe probe_;
};

}  // namespace rme
