// model: KvCache and PagedKv storage.
#include "model/kv_cache.h"

#include <algorithm>

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

KvView KvCache::view() {
  KvView v;
  v.k = k_.data();
  v.v = v_.data();
  v.blocks = &kBlock0;
  v.block_size = std::max(1, n_ctx_);
  v.block_stride = 0;
  v.layer_stride = static_cast<int64_t>(n_ctx_) * kv_dim_;
  v.stride = kv_dim_;
  return v;
}

PagedKv::PagedKv(const LlamaConfig& config, int n_block, int block_size)
    : n_layer_(config.n_layer),
      n_block_(n_block),
      block_size_(block_size),
      kv_dim_(config.kv_dim()),
      k_(static_cast<size_t>(n_block) * config.n_layer * block_size * config.kv_dim()),
      v_(k_.size()) {}

KvView PagedKv::view(std::span<const int> blocks) {
  KvView v;
  v.k = k_.data();
  v.v = v_.data();
  v.blocks = blocks.data();
  v.block_size = block_size_;
  v.layer_stride = block_size_ * kv_dim_;
  v.block_stride = n_layer_ * v.layer_stride;
  v.stride = kv_dim_;
  return v;
}

}  // namespace rme
