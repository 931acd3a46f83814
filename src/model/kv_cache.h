// model: KV caches the forward pass writes into — one contiguous sequence (KvCache) or a pool of
// fixed-size blocks shared by many sequences (PagedKv) — and KvView, how Forward addresses both.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "model/config.h"

namespace rme {

struct Model;

// Where one sequence's K/V rows live: position p of layer l is row p % block_size of block
// blocks[p / block_size]. A contiguous cache is one block as long as the context. Non-owning.
struct KvView {
  float* k = nullptr;  // layer 0 of block 0 of the storage
  float* v = nullptr;
  const int* blocks = nullptr;
  int64_t block_size = 1, block_stride = 0, layer_stride = 0, stride = 0;  // strides in floats

  int64_t offset(int layer, int pos) const {
    return blocks[pos / block_size] * block_stride + layer * layer_stride +
           (pos % block_size) * stride;
  }
};

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
  KvView view();

 private:
  size_t index(int layer, int pos) const {
    return (static_cast<size_t>(layer) * n_ctx_ + pos) * kv_dim_;
  }
  int n_ctx_;
  int64_t kv_dim_;
  std::vector<float> k_, v_;
  std::unique_ptr<KvCache> router_;
  static constexpr int kBlock0 = 0;
};

// Owns n_block blocks of block_size positions for every layer (f32 K and V), laid out
// [block][layer][row][kv_dim] so a block holds everything of its positions. Which block belongs
// to which sequence is the caller's business (engine/); this is storage only. Thread-compatible.
class PagedKv {
 public:
  PagedKv(const LlamaConfig& config, int n_block, int block_size);
  int n_block() const { return n_block_; }
  int block_size() const { return block_size_; }
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }
  size_t block_bytes() const { return bytes() / n_block_; }
  // A sequence whose block table is `blocks` (must cover every position Forward will touch).
  KvView view(std::span<const int> blocks);

 private:
  int n_layer_, n_block_, block_size_;
  int64_t kv_dim_;
  std::vector<float> k_, v_;
};

}  // namespace rme
