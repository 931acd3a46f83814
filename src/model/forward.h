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
#include "model/router.h"
#include "model/weights.h"

namespace rme {

// Sees each chunk's choices: layer -1 for a decision shared by all layers (a TokenRouter), else
// the layer (a LayerRouter). experts is [n_tok, k].
using RouteObserver = std::function<void(int layer, int pos, int n_tok, int k, const int* experts)>;
// Sees the down_proj input of the dense FFN / shared expert: act [n_tok, width]; as an FFN-input
// probe, the normed input of every layer's FFN (the layer-wise gates' input): [n_tok, n_embd].
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
// with its own copy of `kernels` (the pre-gating router it steps uses the same). Owns its MoE
// router: by default the model's trained router (PregateRouter, the model's top-k), replaced by
// set_routing / set_router / set_layer_router. Not thread-safe: one Forward per engine thread.
// Fails (Status) on positions past the cache, bad token ids, or an MoE with no router to run.
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
  // wants logits, in chunk order. An MoE needs every chunk's experts (route_tokens), except with
  // a layer router; a router that is not batchable() is refused.
  Status run_batch(std::span<const SeqChunk> chunks, float* logits);

  // Routes tokens at positions pos.. without running the backbone: experts [n, k] and weights
  // [n, k], k = route_k(), through the token router (the pre-gating router steps router_kv: a
  // KvCache built from model.router->config, holding this sequence's earlier tokens; random and
  // fixed need no cache). Fails with a layer router, which needs the backbone's activations.
  Status route_tokens(std::span<const int> tokens, int pos, KvCache* router_kv, int* experts,
                      float* weights);
  // Experts per token of the current router.
  int route_k() const;
  int max_tokens() const { return max_tokens_; }

  // Where routed experts' weights are read from: table[e] points at n_layer ExpertWeights (e.g. an
  // expert cache's resident copy); null entries, or an empty table, mean the model's own. The
  // table must stay valid through the next run.
  void set_expert_table(std::vector<const ExpertWeights*> table) {
    expert_table_ = std::move(table);
  }

  // Routers: one of inference's (make_router), any TokenRouter (moefy's oracle), or a
  // LayerRouter that routes inside every layer instead (moefy's layer-wise baseline).
  Status set_routing(const RoutingOptions& options);
  void set_router(std::unique_ptr<TokenRouter> router);
  void set_layer_router(std::unique_ptr<LayerRouter> router);
  void set_route_observer(RouteObserver observer) { observer_ = std::move(observer); }
  void set_ffn_probe(FfnProbe probe) { probe_ = std::move(probe); }
  void set_ffn_input_probe(FfnProbe probe) { input_probe_ = std::move(probe); }
  const Model& model() const { return model_; }
  const KernelConfig& kernels() const { return kernels_; }
  ThreadPool& pool() const { return pool_; }

 private:
  Status route(std::span<const int> tokens, int pos, KvCache* router_kv, int n_ctx, int* experts,
               float* weights);
  // Runs n_tok tokens: token t at position pos_[t] of sequence views_[view_[t]]; writes logits
  // for the rows listed in logit_rows_.
  void run_tokens(const int* tokens, int n_tok, float* logits);
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
  std::unique_ptr<TokenRouter> router_;
  std::unique_ptr<LayerRouter> layer_router_;
  std::vector<int> route_expert_;
  std::vector<float> route_weight_;
  std::vector<float> xg_, eg_, eu_, eo_;  // gathered rows of one expert's tokens
  std::vector<int> slot_;                 // token*k+j of each gathered row
  RouteObserver observer_;
  FfnProbe probe_, input_probe_;
};

}  // namespace rme
