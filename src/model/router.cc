// model: the routers inference serves with — Read-ME's pre-gating router, random and fixed.
#include "model/router.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/hash.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace rme {

Status check_route_k(const Model& moe, int k) {
  const MoeConfig& m = moe.moe;
  if (!m.is_moe()) return invalid_argument("routing: the model is dense (no experts)");
  if (k < 1 || k > m.n_expert)
    return invalid_argument("routing: top-k " + std::to_string(k) + " outside 1.." +
                            std::to_string(m.n_expert));
  return Status::Ok();
}

void select_top_k(const float* scores, int n, int k, int* experts, float* weights,
                  bool softmax_weights) {
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int e = 0; e < n; ++e) {
      bool taken = false;
      for (int i = 0; i < j; ++i) taken |= experts[i] == e;
      if (!taken && (best < 0 || scores[e] > scores[best])) best = e;
    }
    experts[j] = best;
  }
  if (k == 1 || !softmax_weights) {
    for (int j = 0; j < k; ++j) weights[j] = 1.0f / k;
    return;
  }
  float sum = 0;
  for (int j = 0; j < k; ++j) sum += weights[j] = std::exp(scores[experts[j]] - scores[experts[0]]);
  for (int j = 0; j < k; ++j) weights[j] /= sum;
}

Result<std::unique_ptr<PregateRouter>> PregateRouter::create(const Model& moe, int k,
                                                             int max_tokens, ThreadPool& pool,
                                                             const KernelConfig& kernels) {
  RME_RETURN_IF_ERROR(check_route_k(moe, k));
  if (!moe.router)
    return invalid_argument(moe.source +
                            ": the MoE has no router yet (run `rme train-router`, or pick "
                            "--routing oracle|random|expert:N)");
  return std::unique_ptr<PregateRouter>(
      new PregateRouter(*moe.router, moe.moe.n_expert, k, max_tokens, pool, kernels));
}

PregateRouter::PregateRouter(const Model& router, int n_expert, int k, int max_tokens,
                             ThreadPool& pool, const KernelConfig& kernels)
    : n_expert_(n_expert),
      k_(k),
      max_tokens_(std::max(1, max_tokens)),
      fwd_(std::make_unique<Forward>(router, max_tokens_, pool, kernels)),
      scores_(static_cast<size_t>(max_tokens_) * n_expert) {}

PregateRouter::~PregateRouter() = default;

Status PregateRouter::route(std::span<const int> tokens, int pos, KvCache* router_kv, int,
                            int* experts, float* weights) {
  if (router_kv == nullptr)
    return invalid_argument("routing: no router cache (the KV cache was not built from the MoE)");
  for (size_t done = 0; done < tokens.size();) {
    const int n = static_cast<int>(std::min<size_t>(max_tokens_, tokens.size() - done));
    RME_RETURN_IF_ERROR(fwd_->run(tokens.subspan(done, n), pos + static_cast<int>(done), *router_kv,
                                  scores_.data(), true));
    for (int t = 0; t < n; ++t)
      select_top_k(&scores_[t * n_expert_], n_expert_, k_, &experts[(done + t) * k_],
                   &weights[(done + t) * k_], true);
    done += n;
  }
  return Status::Ok();
}

Status RandomRouter::route(std::span<const int> tokens, int pos, KvCache*, int, int* experts,
                           float* weights) {
  scores_.resize(n_expert_);
  for (size_t t = 0; t < tokens.size(); ++t) {
    uint64_t h = splitmix(seed_ ^ splitmix(static_cast<uint64_t>(pos + t) * 1315423911u +
                                           static_cast<uint64_t>(tokens[t])));
    for (int e = 0; e < n_expert_; ++e) scores_[e] = static_cast<float>((h = splitmix(h)) >> 40);
    select_top_k(scores_.data(), n_expert_, k_, &experts[t * k_], &weights[t * k_], false);
  }
  return Status::Ok();
}

Status FixedRouter::route(std::span<const int> tokens, int, KvCache*, int, int* experts,
                          float* weights) {
  std::fill_n(experts, tokens.size(), expert_);
  std::fill_n(weights, tokens.size(), 1.0f);
  return Status::Ok();
}

Result<std::unique_ptr<TokenRouter>> make_router(const Model& moe, const RoutingOptions& o,
                                                 int max_tokens, ThreadPool& pool,
                                                 const KernelConfig& kernels) {
  const MoeConfig& m = moe.moe;
  const int k = o.top_k > 0 ? o.top_k : m.top_k;
  RME_RETURN_IF_ERROR(check_route_k(moe, k));
  switch (o.mode) {
    case RoutingOptions::Mode::kRouter: {
      RME_ASSIGN_OR_RETURN(auto r, PregateRouter::create(moe, k, max_tokens, pool, kernels));
      return std::unique_ptr<TokenRouter>(std::move(r));
    }
    case RoutingOptions::Mode::kRandom:
      return std::unique_ptr<TokenRouter>(std::make_unique<RandomRouter>(m.n_expert, k, o.seed));
    case RoutingOptions::Mode::kFixed:
      if (o.fixed_expert < 0 || o.fixed_expert >= m.n_expert)
        return invalid_argument("routing: expert " + std::to_string(o.fixed_expert) +
                                " outside 0.." + std::to_string(m.n_expert - 1));
      if (k != 1) return invalid_argument("routing: a fixed expert means top-k 1");
      return std::unique_ptr<TokenRouter>(std::make_unique<FixedRouter>(o.fixed_expert));
  }
  return invalid_argument("routing: unknown mode");
}

}  // namespace rme
