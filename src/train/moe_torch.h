// train: a Read-ME MoE in libtorch — the backbone (a LlamaTorch whose FFNs are the shared
// experts), the routed experts of every layer, the router, and the routing targets.
#pragma once

#include <torch/torch.h>

#include <array>
#include <functional>
#include <vector>

#include "model/weights.h"
#include "train/torch_llama.h"

namespace rme {

// Per layer, every expert's gate/up rows and down columns concatenated (expert e owns channels
// offset[e] .. offset[e+1]). A token's output is the sum over experts of its route weight times
// the expert's SwiGLU, computed for routed (token, expert) pairs only; when every expert's
// activations are wanted (router targets), one dense pass over all channels masked by the route.
// Both give the same outputs and gradients (tests/train/moe_torch_test.cc). Owns its parameters;
// not thread-safe.
class MoeExpertsImpl : public torch::nn::Module {
 public:
  explicit MoeExpertsImpl(const Model& moe);

  // h2 [B, T, D], route [B, T, E] (weights per expert, zeros for unused) -> [B, T, D]. When
  // `mass` is given it receives each expert's |activation| summed over its channels [B, T, E].
  torch::Tensor forward(int layer, const torch::Tensor& h2, const torch::Tensor& route,
                        torch::Tensor* mass = nullptr);
  // Copies the parameters into m's expert views (f32 buffers owned by m).
  void export_into(Model& m) const;

  int n_expert() const { return n_expert_; }
  std::vector<torch::Tensor> gate, up, down;  // [l]: [W, D], [W, D], [D, W]
  std::vector<torch::Tensor> owner;           // [l]: int64 [W], expert of each channel

 private:
  int n_expert_;
  std::vector<std::vector<int64_t>> offset_;  // [l][E + 1]
};
TORCH_MODULE(MoeExperts);

// Sum over experts of route weight x SwiGLU for the routed (token, expert) pairs only: h2 [B, T,
// D], route [B, T, E] -> [B, T, D]. expert(e) gives e's gate [W, D], up [W, D], down [D, W] (f32; W
// may be 0), asked only for experts some token was routed to.
torch::Tensor routed_experts(const torch::Tensor& h2, const torch::Tensor& route, int n_expert,
                             const std::function<std::array<torch::Tensor, 3>(int)>& expert);

// The torch config of a Model (rotate-half RoPE, as LlamaTorch computes).
LlamaConfig torch_config(const LlamaConfig& c);

// Route weights [B, T, E] from router logits [B, T, E]: top-k, softmax over the chosen k (k = 1:
// one-hot) — the engine's rule.
torch::Tensor route_weights(const torch::Tensor& logits, int k);

// Per-expert membership of the dense parent's channels: [F, E] float (1 where expert e routes the
// channel), one per layer.
std::vector<torch::Tensor> expert_masks(const MoeConfig& moe);

}  // namespace rme
