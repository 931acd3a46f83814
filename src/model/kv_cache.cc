// model: KvCache storage.
#include "model/kv_cache.h"

namespace rme {

KvCache::KvCache(const LlamaConfig& config, int n_ctx)
    : n_ctx_(n_ctx),
      kv_dim_(config.kv_dim()),
      k_(static_cast<size_t>(config.n_layer) * n_ctx * config.kv_dim()),
      v_(k_.size()) {}

}  // namespace rme
