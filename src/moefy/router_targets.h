// moefy: the pre-gating router's distillation targets, computed once by the inference engine from
// the dense parent and kept on disk as shards that every router step, round and seed reads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/kernel_config.h"
#include "model/weights.h"

namespace rme {

// What a targets directory holds. Plain data; every field is part of the fingerprint.
struct RouterTargetSpec {
  int seq_len = 128;              // tokens per window (the router's training length)
  int64_t pool_tokens = 1 << 18;  // training windows: pool_tokens / seq_len, by domain weight
  int64_t eval_tokens = 8192;     // per domain with a validation split: its first windows
  uint64_t seed = 1;              // which training windows (not the router's seed)
  bool gate_inputs = false;       // also every layer's FFN input (f16), for the layer-wise gates
  int64_t pool_windows() const { return std::max<int64_t>(1, pool_tokens / seq_len); }
};

// Bytes the gate inputs of `spec` would take: (pool + validation tokens) x n_layer x n_embd x 2.
uint64_t gate_input_bytes(const RouterTargetSpec& spec, int64_t valid_tokens, int n_layer,
                          int n_embd);

// One window's rows, borrowed from a mapping: ids [T]; score [T, E] (per token, the mean over
// layers of each expert's share of |down_proj input| mass: add_expert_mass / n_layer, the
// distillation target and, by argmax, the oracle expert); labels [T, L] (each layer's own argmax,
// the layer-wise gates' label); gate [T, L, D] f16 (each layer's normed FFN input), or null.
struct TargetRows {
  const int32_t* ids = nullptr;
  const float* score = nullptr;
  const uint8_t* labels = nullptr;
  const uint16_t* gate = nullptr;
};

// A finished targets directory, read through mappings. Owns them; immutable; thread-safe to read.
// open() fails (kCorrupt / kInvalidArgument) on a directory that is incomplete, misshapen, or
// whose chunk headers disagree with its manifest.
class RouterTargets {
 public:
  static Result<std::unique_ptr<RouterTargets>> open(const std::string& dir);

  int seq_len() const { return seq_len_; }
  int n_expert() const { return n_expert_; }
  int n_layer() const { return n_layer_; }
  int gate_dim() const { return gate_dim_; }  // 0: no gate inputs
  const std::string& fingerprint() const { return fingerprint_; }

  int64_t n_pool() const { return n_pool_; }
  TargetRows pool(int64_t window) const;
  // Validation windows of each domain that has a validation split, in corpus order.
  const std::vector<std::string>& valid_domains() const { return valid_names_; }
  int64_t n_valid(size_t domain) const { return valid_[domain].second; }
  TargetRows valid(size_t domain, int64_t window) const;

 private:
  struct Chunk {
    std::shared_ptr<MappedFile> file;
    int64_t windows = 0;
    uint64_t ids = 0, score = 0, labels = 0, gate = 0;  // byte offsets of the arrays
  };
  TargetRows rows(const Chunk& c, int64_t w) const;

  int seq_len_ = 0, n_expert_ = 0, n_layer_ = 0, gate_dim_ = 0;
  std::string fingerprint_;
  int64_t n_pool_ = 0, chunk_windows_ = 0;
  std::vector<Chunk> pool_chunks_;
  Chunk valid_chunk_;
  std::vector<std::string> valid_names_;
  std::vector<std::pair<int64_t, int64_t>> valid_;  // [d] (first window, count) in valid_chunk_
};

// Computes the targets of `spec` for the MoE carved from `dense` over the corpus at corpus_dir
// into dir, with the engine's batched forward (its prefill kernels, int8 where the parent is
// quantized). Resumable: chunks already written (each atomically) are kept, so a killed build
// run again finishes where it stopped. A dir made with another spec, parent, layout or corpus is
// refused, never mixed. Shows progress (tokens/s, ETA) on stderr. Borrows pool for the forward.
Status build_router_targets(const Model& dense, const MoeConfig& moe, const std::string& corpus_dir,
                            const RouterTargetSpec& spec, const std::string& dir, ThreadPool& pool,
                            const KernelConfig& kernels);

// The fingerprint build_router_targets records: JSON of everything the targets depend on.
Result<std::string> router_target_fingerprint(const Model& dense, const MoeConfig& moe,
                                              const std::string& corpus_dir,
                                              const RouterTargetSpec& spec);

}  // namespace rme
