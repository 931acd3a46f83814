// moefy: the analysis baselines' routers — oracle routing from the dense parent's activations
// and the layer-wise linear gates — plugged into a Forward (set_router / set_layer_router), kept
// out of the inference hot path.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/kernel_config.h"
#include "model/forward.h"
#include "model/router.h"

namespace rme {

// Routes each token to the expert(s) holding most of the dense parent's |down_proj input| mass
// (add_expert_mass summed over layers): the upper bound a router distilled from it aims at. Runs
// the parent on its own KV cache of one sequence (so it is not batchable()), rebuilt when the
// sequence's context changes; positions must continue the sequence it has seen. Borrows the
// dense model and the pool. Equal weights 1/k.
class OracleRouter final : public TokenRouter {
 public:
  // Fails unless `dense` is the MoE's parent shape (dense, same layers, vocabulary and FFN width
  // parent_n_ff) and k is in 1..n_expert.
  static Result<std::unique_ptr<OracleRouter>> create(const Model& moe, const Model& dense, int k,
                                                      int max_tokens, ThreadPool& pool,
                                                      const KernelConfig& kernels);
  int k() const override { return k_; }
  Status route(std::span<const int> tokens, int pos, KvCache* router_kv, int n_ctx, int* experts,
               float* weights) override;
  bool batchable() const override { return false; }

 private:
  OracleRouter(const Model& moe, const Model& dense, int k, int max_tokens, ThreadPool& pool,
               const KernelConfig& kernels);
  const Model& moe_;
  const Model& dense_;
  int k_, max_tokens_;
  Forward fwd_;
  std::unique_ptr<KvCache> kv_;
  std::vector<float> scores_;  // [max_tokens, n_expert]
};

// The conventional layer-wise MoE baseline: in each layer a linear gate (LayerWeights::layer_gate,
// [n_expert, n_embd]) over the normed FFN input picks the top k, mixed by their softmax.
class LayerGateRouter final : public LayerRouter {
 public:
  // Fails when the MoE has no layer gates or k is outside 1..n_expert.
  static Result<std::unique_ptr<LayerGateRouter>> create(const Model& moe, int k, int max_tokens,
                                                         ThreadPool& pool,
                                                         const KernelConfig& kernels);
  int k() const override { return k_; }
  void route(int layer, const float* xb, int n, int* experts, float* weights) override;

 private:
  LayerGateRouter(const Model& moe, int k, int max_tokens, ThreadPool& pool,
                  const KernelConfig& kernels);
  const Model& moe_;
  int k_;
  ThreadPool& pool_;
  const KernelConfig kernels_;
  std::vector<float> scores_;  // [max_tokens, n_expert]
};

}  // namespace rme
