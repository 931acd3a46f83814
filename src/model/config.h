// model: LlamaConfig, the architecture hyperparameters of a dense Llama-family model.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/ops.h"

namespace rme {

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;   // llama3
  float high_freq_factor = 4.0f;  // llama3
  int original_max_position = 8192;
};

// Plain data; validate() before use. Counts follow GGUF vocabulary.
struct LlamaConfig {
  int n_vocab = 0;
  int n_embd = 0;  // D
  int n_layer = 0;
  int n_head = 0;     // H
  int n_head_kv = 0;  // Hkv (GQA when < H)
  int n_ff = 0;       // F
  int n_ctx = 0;      // maximum positions the model was trained for
  int head_dim = 0;   // Dh, usually D / H
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeStyle rope_style = RopeStyle::kInterleaved;
  RopeScaling rope_scaling;
  bool tied_output = false;  // output projection shares the token embedding
  bool attn_bias = false;    // q/k/v projections add a bias (Qwen2; GGUF architecture "qwen2")
  // Mistral's sliding window: a position attends to itself and the sliding_window - 1 before it;
  // 0 = every earlier position.
  int sliding_window = 0;
  // Explicit per-pair frequency divisors [Dh/2] (GGUF rope_freqs.weight); applied after
  // rope_scaling. Empty = none.
  std::vector<float> rope_freq_factors;
  // Per-layer FFN width when layers differ (a pruned model, or an MoE's shared expert); empty =
  // n_ff in every layer. A width may be 0 (no FFN besides the routed experts).
  std::vector<int> n_ff_layer;
  // Rows of the output projection when it is not the vocabulary (a router's expert logits);
  // 0 = n_vocab.
  int n_out = 0;

  int q_dim() const { return n_head * head_dim; }
  int kv_dim() const { return n_head_kv * head_dim; }
  int ffn_width(int layer) const { return n_ff_layer.empty() ? n_ff : n_ff_layer[layer]; }
  int max_ffn_width() const;
  int n_output() const { return n_out > 0 ? n_out : n_vocab; }
  Status validate() const;
  // Per-pair angular frequencies [Dh/2] with rope_theta and rope_scaling applied.
  std::vector<float> rope_inv_freq() const;
  int64_t n_params() const;
  std::string summary() const;
};

}  // namespace rme
