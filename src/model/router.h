// model: how a Read-ME MoE picks each token's experts — the router interfaces Forward calls, and
// the routers inference serves with (the trained pre-gating router, random, a fixed expert).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/kernel_config.h"

namespace rme {

class Forward;
class KvCache;
struct Model;

// Decides each token's experts from what precedes the backbone (token ids, the router's own
// cache), once for all layers. Implementations: the ones below; the analysis baselines (oracle
// routing from the dense parent) live in moefy/baseline_routers.h. Not thread-safe: one per
// Forward. Fails (Status) on input it cannot route (positions past its cache, bad token ids).
class TokenRouter {
 public:
  virtual ~TokenRouter() = default;
  // Experts per token (k of experts/weights rows).
  virtual int k() const = 0;
  // Routes tokens at positions pos .. pos+n-1 of one sequence: experts [n, k] and their mixing
  // weights [n, k]. router_kv is the sequence's router cache (a KvCache's router(), or one built
  // from model.router->config); n_ctx is the sequence's context (for routers holding their own
  // per-sequence state). Routers without state ignore both.
  virtual Status route(std::span<const int> tokens, int pos, KvCache* router_kv, int n_ctx,
                       int* experts, float* weights) = 0;
  // False when the router keeps one sequence's state itself (so it cannot route the interleaved
  // sequences of a batched step).
  virtual bool batchable() const { return true; }
};

// Routes per layer from the layer's normed FFN input (the layer-wise MoE baseline,
// moefy/baseline_routers.h). Forward calls it inside every layer; same threading as TokenRouter.
class LayerRouter {
 public:
  virtual ~LayerRouter() = default;
  virtual int k() const = 0;
  // xb [n, n_embd] -> experts [n, k], weights [n, k].
  virtual void route(int layer, const float* xb, int n, int* experts, float* weights) = 0;
};

// Every router's precondition: `moe` is an MoE and k is in 1..n_expert (else invalid_argument).
Status check_route_k(const Model& moe, int k);

// Writes the k largest of scores[0..n) (ties: lower index) to experts, and to weights either the
// softmax of their scores over those k (softmax_weights) or 1/k.
void select_top_k(const float* scores, int n, int k, int* experts, float* weights,
                  bool softmax_weights);

// Read-ME's pre-gating router: steps model.router (a small causal transformer over token ids) on
// the sequence's router cache and keeps the top k of its logits, mixed by their softmax. Borrows
// the router model and the pool.
class PregateRouter final : public TokenRouter {
 public:
  // Fails when the MoE has no router or k is outside 1..n_expert.
  static Result<std::unique_ptr<PregateRouter>> create(const Model& moe, int k, int max_tokens,
                                                       ThreadPool& pool,
                                                       const KernelConfig& kernels);
  ~PregateRouter() override;
  int k() const override { return k_; }
  Status route(std::span<const int> tokens, int pos, KvCache* router_kv, int n_ctx, int* experts,
               float* weights) override;

 private:
  PregateRouter(const Model& router, int n_expert, int k, int max_tokens, ThreadPool& pool,
                const KernelConfig& kernels);
  int n_expert_, k_, max_tokens_;
  std::unique_ptr<Forward> fwd_;
  std::vector<float> scores_;  // [max_tokens, n_expert]
};

// Uniform experts, a pure function of (seed, position, token): the same text routes the same way
// whatever the batch. Equal weights 1/k.
class RandomRouter final : public TokenRouter {
 public:
  RandomRouter(int n_expert, int k, uint64_t seed) : n_expert_(n_expert), k_(k), seed_(seed) {}
  int k() const override { return k_; }
  Status route(std::span<const int> tokens, int pos, KvCache* router_kv, int n_ctx, int* experts,
               float* weights) override;

 private:
  int n_expert_, k_;
  uint64_t seed_;
  std::vector<float> scores_;
};

// Every token to one expert (top-1, weight 1): per-expert baselines and cache tests.
class FixedRouter final : public TokenRouter {
 public:
  explicit FixedRouter(int expert) : expert_(expert) {}
  int k() const override { return 1; }
  Status route(std::span<const int> tokens, int pos, KvCache* router_kv, int n_ctx, int* experts,
               float* weights) override;

 private:
  int expert_;
};

// The routers inference serves with, by name (CLI --routing, ServingOptions).
struct RoutingOptions {
  enum class Mode { kRouter, kRandom, kFixed };
  Mode mode = Mode::kRouter;
  int top_k = 0;  // 0 = the model's own
  int fixed_expert = 0;
  uint64_t seed = 0;
};

// The router `options` names for MoE `moe`, checked against it (a router to step, top-k in
// 1..n_expert, a fixed expert in range and top-1).
Result<std::unique_ptr<TokenRouter>> make_router(const Model& moe, const RoutingOptions& options,
                                                 int max_tokens, ThreadPool& pool,
                                                 const KernelConfig& kernels);

}  // namespace rme
