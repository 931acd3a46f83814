// model: KvCache, the contiguous per-sequence key/value cache the forward pass writes into.
#pragma once

#include <memory>
#include <vector>

#include "model/config.h"

namespace rme {

struct Model;

// Owns f32 K and V for n_layer x n_ctx positions x kv_dim, plus, for an MoE with a pre-gating
// router, the router's own cache (routing a new token is one router step). One sequence;
// thread-compatible.
class KvCache {
 public:
  KvCache(const LlamaConfig& config, int n_ctx);
  // Sized for the model, including its router's cache when it has one.
  KvCache(const Model& model, int n_ctx);
  int n_ctx() const { return n_ctx_; }
  int64_t stride() const { return kv_dim_; }  // floats between positions
  float* k(int layer, int pos) { return k_.data() + index(layer, pos); }
  float* v(int layer, int pos) { return v_.data() + index(layer, pos); }
  KvCache* router() { return router_.get(); }
  size_t bytes() const {
    return (k_.size() + v_.size()) * sizeof(float) + (router_ ? router_->bytes() : 0);
  }

 private:
  size_t index(int layer, int pos) const {
    return (static_cast<size_t>(layer) * n_ctx_ + pos) * kv_dim_;
  }
  int n_ctx_;
  int64_t kv_dim_;
  std::vector<float> k_, v_;
  std::unique_ptr<KvCache> router_;
};

}  // namespace rme
