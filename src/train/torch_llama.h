// train: LlamaTorch, the Llama architecture of the engine written with libtorch's C++ API for
// training (Hugging Face conventions: weights [out, in], rotate-half RoPE, tied or untied output).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace rme {

// Owns its parameters (registered with torch::nn::Module, so optimizers and serialization see
// them). Not thread-safe; one instance per training process.
class LlamaTorchImpl : public torch::nn::Module {
 public:
  explicit LlamaTorchImpl(const LlamaConfig& config);

  // Sees each layer's FFN input h2 [B, T, D] and its own FFN's down_proj input act [B, T, F];
  // returns a term added to the residual (e.g. routed experts) or an undefined tensor.
  using FfnHook =
      std::function<torch::Tensor(int layer, const torch::Tensor& h2, const torch::Tensor& act)>;
  // ids [B, T] int64 -> logits [B, T, n_output]
  torch::Tensor forward(const torch::Tensor& ids, const FfnHook& hook = {});
  // Copies a loaded Model's backbone weights in (dequantized; Q/K rows moved to rotate-half
  // order). The config must match, per-layer FFN widths included.
  void load_from(const Model& model);
  // Mean next-token cross-entropy of ids[:, :-1] predicting ids[:, 1:] is done by the caller;
  // this initializes parameters: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer).
  void init_weights(uint64_t seed);

  const LlamaConfig& config() const { return config_; }

  struct Layer {
    torch::Tensor attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down;
    torch::Tensor bq, bk, bv;  // q/k/v biases with config.attn_bias (Qwen2); else undefined
  };
  torch::Tensor tok_embd, out_norm, output;  // output undefined when tied
  std::vector<Layer> layers;

  // Parameters that get weight decay (matrices) and those that do not (norm gains, biases).
  std::vector<torch::Tensor> decay_params() const;
  std::vector<torch::Tensor> no_decay_params() const;

 private:
  LlamaConfig config_;
  torch::Tensor cos_, sin_;  // [n_ctx, Dh] RoPE tables
};
TORCH_MODULE(LlamaTorch);

// Pieces of a layer that LlamaTorch and the bounded MoE trainer (train/bounded_moe.h) share.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps);
// RoPE cos and sin [n_ctx, head_dim] from the engine's frequency table.
std::pair<torch::Tensor, torch::Tensor> rope_tables(const LlamaConfig& c);
// [T, T] additive causal mask (and Mistral's sliding window).
torch::Tensor attention_mask(const LlamaConfig& c, int64_t T);
// x + attention(rms_norm(x)) with layer L's attention weights (f32) over x [B, T, D]; cos and sin
// [1, 1, T, head_dim].
torch::Tensor attention_residual(const LlamaConfig& c, const LlamaTorchImpl::Layer& L,
                                 const torch::Tensor& x, const torch::Tensor& cos,
                                 const torch::Tensor& sin, const torch::Tensor& mask);

// A [n_out, n_in] f32 tensor with the view's rows dequantized, taken in `row_order` (empty = as
// stored).
torch::Tensor tensor_from(const MatView& v, const std::vector<int64_t>& row_order = {});

}  // namespace rme
