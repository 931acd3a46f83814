// moefy: oracle routing from the dense parent, and the layer-wise gates baseline.
#include "moefy/baseline_routers.h"

#include <algorithm>
#include <string>

#include "kernels/matmul.h"
#include "model/moe.h"

namespace rme {

Result<std::unique_ptr<OracleRouter>> OracleRouter::create(const Model& moe, const Model& dense,
                                                           int k, int max_tokens, ThreadPool& pool,
                                                           const KernelConfig& kernels) {
  const MoeConfig& m = moe.moe;
  RME_RETURN_IF_ERROR(check_route_k(moe, k));
  if (dense.moe.is_moe() || dense.config.n_layer != moe.config.n_layer ||
      dense.config.ffn_width(0) != m.parent_n_ff || dense.config.n_vocab != moe.config.n_vocab)
    return invalid_argument(
        "routing: oracle routing needs the dense parent (same layers, vocabulary and FFN width " +
        std::to_string(m.parent_n_ff) + ")");
  return std::unique_ptr<OracleRouter>(new OracleRouter(moe, dense, k, max_tokens, pool, kernels));
}

OracleRouter::OracleRouter(const Model& moe, const Model& dense, int k, int max_tokens,
                           ThreadPool& pool, const KernelConfig& kernels)
    : moe_(moe),
      dense_(dense),
      k_(k),
      max_tokens_(std::max(1, max_tokens)),
      fwd_(dense, max_tokens_, pool, kernels),
      scores_(static_cast<size_t>(max_tokens_) * moe.moe.n_expert) {
  fwd_.set_ffn_probe([this](int layer, int n, const float* act, int64_t width) {
    add_expert_mass(moe_.moe, layer, act, n, width, scores_.data());
  });
}

Status OracleRouter::route(std::span<const int> tokens, int pos, KvCache*, int n_ctx, int* experts,
                           float* weights) {
  const int E = moe_.moe.n_expert;
  if (n_ctx <= 0) return invalid_argument("routing: oracle routing needs the sequence's context");
  if (!kv_ || kv_->n_ctx() != n_ctx) kv_ = std::make_unique<KvCache>(dense_, n_ctx);
  for (size_t done = 0; done < tokens.size();) {
    const int n = static_cast<int>(std::min<size_t>(max_tokens_, tokens.size() - done));
    std::fill_n(scores_.begin(), static_cast<size_t>(n) * E, 0.0f);
    RME_RETURN_IF_ERROR(
        fwd_.run(tokens.subspan(done, n), pos + static_cast<int>(done), *kv_, nullptr, false));
    for (int t = 0; t < n; ++t)
      select_top_k(&scores_[t * E], E, k_, &experts[(done + t) * k_], &weights[(done + t) * k_],
                   false);
    done += n;
  }
  return Status::Ok();
}

Result<std::unique_ptr<LayerGateRouter>> LayerGateRouter::create(const Model& moe, int k,
                                                                 int max_tokens, ThreadPool& pool,
                                                                 const KernelConfig& kernels) {
  RME_RETURN_IF_ERROR(check_route_k(moe, k));
  if (!moe.moe.has_layer_gate)
    return invalid_argument(moe.source + ": the MoE has no layer-wise gates");
  return std::unique_ptr<LayerGateRouter>(new LayerGateRouter(moe, k, max_tokens, pool, kernels));
}

LayerGateRouter::LayerGateRouter(const Model& moe, int k, int max_tokens, ThreadPool& pool,
                                 const KernelConfig& kernels)
    : moe_(moe),
      k_(k),
      pool_(pool),
      kernels_(kernels),
      scores_(static_cast<size_t>(std::max(1, max_tokens)) * moe.moe.n_expert) {}

void LayerGateRouter::route(int layer, const float* xb, int n, int* experts, float* weights) {
  const int E = moe_.moe.n_expert;
  const int64_t D = moe_.config.n_embd;
  const LayerWeights& L = moe_.weights.layers[layer];
  matmul(kernels_, L.layer_gate, xb, D, n, scores_.data(), E, pool_);  // [n, E]
  for (int t = 0; t < n; ++t)
    select_top_k(&scores_[t * E], E, k_, &experts[t * k_], &weights[t * k_], true);
}

}  // namespace rme
