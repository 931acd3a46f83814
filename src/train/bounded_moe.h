// train: a Read-ME MoE held for fine-tuning within a memory bound — every weight frozen in 16-bit
// except the shared experts and one routed expert at a time (f32, trainable), with activations
// recomputed one layer at a time in backward.
#pragma once

#include <torch/torch.h>

#include <set>
#include <utility>
#include <vector>

#include "model/weights.h"
#include "train/torch_llama.h"

namespace rme {

// Why this shape: a 1.1B parent's MoE (tinyllama, 7 domains) has 2.7B parameters; f32 with
// gradients and AdamW state is 16 bytes each (44 GB). Here the frozen bulk costs 2 bytes a
// parameter, only the trainable set (shared experts + one routed expert, about 0.38B) costs 16,
// and since each token uses one routed expert, experts are tuned in turn (select()). Forward
// keeps only each layer's input; backward recomputes one layer at a time from it, so activations
// and the f32 copies of frozen matrices exist for one layer only.
//
// Shares the Model's storage (its mapped files and buffers, kept alive here): 16-bit matrices of
// the storage type are read where they lie, others are copied; tuned experts get new tensors.
// Not thread-safe. Same math as LlamaTorch + MoeExperts (tests/train/bounded_moe_test.cc).
class BoundedMoe {
 public:
  // moe: an MoE with rotate-half Q/K rows (an HF directory, as train-router writes). storage:
  // kHalf or kBFloat16 (the parent's 16-bit type keeps its values exactly).
  BoundedMoe(const Model& moe, torch::ScalarType storage);

  int n_expert() const { return n_expert_; }
  int selected() const { return selected_; }
  // Parameters of routed expert e in f32 with gradients and AdamW state, per layer.
  int64_t expert_train_bytes(int e, int layer) const;
  int64_t shared_train_bytes() const;  // every layer's shared experts, f32 + gradient + AdamW
  // Makes routed expert e the trainable one in layers [first, last) (last -1: all), with the
  // shared experts of those layers; e = -1: no routed expert, every shared expert. The previous
  // selection's tuned weights are written back to 16-bit storage first. A 7B expert (2B
  // parameters, 32 GB with AdamW) is tuned a group of layers at a time.
  void select(int e, int first = 0, int last = -1);
  // The trainable shared experts (gate, up, down per layer), then the selected expert's.
  std::vector<torch::Tensor> parameters() const;
  // Mean next-token cross-entropy of ids [B, T+1] with route [B, T, E] (route_weights); with
  // `backward`, gradients accumulate into parameters().
  double loss(const torch::Tensor& ids, const torch::Tensor& route, bool backward);
  // The router's distillation targets from this MoE as it now is, for ids [B, T] routed by
  // route [B, T, E]: per token and layer, each routed expert's share of the layer's
  // |down_proj input| mass (every expert's channels evaluated; the shared ones count in the total
  // for no expert), averaged over layers. [B, T, E], no gradient. The full path's targets for
  // router rounds (finetune.cc: MoeExperts with `mass`), on the MoE's own hidden states.
  torch::Tensor expert_scores(const torch::Tensor& ids, const torch::Tensor& route) const;

  // What changes in training: shared experts, the selected expert, and every tuned expert's
  // 16-bit weights. load() expects the same model.
  void save(torch::serialize::OutputArchive& a) const;
  void load(torch::serialize::InputArchive& a);
  // `shell` (the MoE this was made from: config, layout, metadata) with weights viewing this
  // object's tensors (valid while it lives and is not changed); the selected expert is written
  // back first.
  Model view_model(const Model& shell);
  // Bytes of every tensor held, and of the trainable ones (add 3x those for gradients and AdamW).
  int64_t storage_bytes() const;
  int64_t trainable_bytes() const;

 private:
  struct Expert {
    torch::Tensor gate, up, down;  // 16-bit, frozen
  };
  struct Layer {
    LlamaTorchImpl::Layer attn;    // 16-bit wq/wk/wv/wo, f32 norms and biases; gate/up/down unused
    torch::Tensor gate, up, down;  // the shared expert, f32, trainable
    std::vector<Expert> experts;
    torch::Tensor tgate, tup, tdown;  // the selected expert in f32 (trainable), or undefined
    torch::Tensor layer_gate;         // the layer-wise baseline's gate [E, D], carried through
  };
  torch::Tensor layer_forward(int l, const torch::Tensor& x, const torch::Tensor& route,
                              const torch::Tensor& cos, const torch::Tensor& sin,
                              const torch::Tensor& mask, torch::Tensor* share = nullptr) const;
  torch::Tensor head(const torch::Tensor& x) const;
  void release_pages(const torch::Tensor& t) const;

  LlamaConfig config_;
  int n_expert_;
  torch::ScalarType storage_;
  torch::Tensor tok_embd_, out_norm_, output_;  // output_ undefined when tied
  torch::Tensor cos_, sin_;
  std::vector<Layer> layers_;
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::vector<std::shared_ptr<Buffer>> buffers_;
  int selected_ = -1, first_ = 0, last_ = 0;
  std::set<std::pair<int, int>> tuned_;  // (expert, layer) whose weights were written back
};

}  // namespace rme
