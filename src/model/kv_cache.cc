// model: KvCache storage.
#include "model/kv_cache.h"

#include "model/weights.h"

namespace rme {

KvCache::KvCache(const LlamaConfig& config, int n_ctx)
    : n_ctx_(n_ctx),
      kv_dim_(config.kv_dim()),
      k_(static_cast<size_t>(config.n_layer) * n_ctx * config.kv_dim()),
      v_(k_.size()) {}

KvCache::KvCache(const Model& model, int n_ctx) : KvCache(model.config, n_ctx) {
  if (model.router) router_ = std::make_unique<KvCache>(model.router->config, n_ctx);
}

}  // namespace rme
