// train: pieces the MoE training loops share — learning-rate schedule, the distillation loss,
// the dense parent's routing targets, opening an MoE with its corpus, writing the result.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/weights.h"
#include "moefy/router_targets.h"
#include "train/moe_torch.h"
#include "train/moe_trainer.h"
#include "train/torch_llama.h"
#include "train/train_config.h"
#include "train/train_util.h"

namespace rme {

void set_lr(torch::optim::AdamW& opt, double lr);

// One phase of finetune: expert tuning (LM loss, router frozen) or router tuning (distillation,
// backbone frozen). Rounds 2.. start with router tuning; learning rates x decay^round.
struct FinetunePhase {
  bool router;
  int round, steps;
  double lr;
};
std::vector<FinetunePhase> finetune_phases(const FinetuneOptions& o);

// KL(softmax(score / tau) || softmax(logits)), mean over tokens.
torch::Tensor distill_loss(const torch::Tensor& logits, const torch::Tensor& score, double tau);

// The libtorch reference for the engine-made router targets (moefy/router_targets.h, tested equal
// in RouterTargetsTest); training reads those. The dense parent's routing targets for ids [B, T]:
// per layer the share of |down_proj input|
// mass in each expert's channels; score = its mean over layers (argmax = the oracle expert, as
// the engine's add_expert_mass). Also each layer's FFN input and per-layer label.
struct Targets {
  torch::Tensor score;  // [B, T, E]
  std::vector<torch::Tensor> h2, labels;
};
Targets dense_targets(LlamaTorch& dense, const std::vector<torch::Tensor>& masks,
                      const torch::Tensor& ids);

// A batch of router targets (engine-made, moefy/router_targets.h) as tensors: ids [B, T] int64,
// score [B, T, E], and with gate inputs, per layer labels [B, T] int64 and FFN inputs [B, T, D].
struct TargetBatch {
  torch::Tensor ids, score;
  std::vector<torch::Tensor> h2, labels;
};
TargetBatch target_batch(const RouterTargets& targets, const std::vector<TargetRows>& rows,
                         bool with_gate_inputs);

// The order router steps read the target pool in: sample j (= step * batch + b) is window
// perm_e[j mod N] of epoch e = j / N, perm_e a shuffle seeded by (seed, e). A pure function of
// (seed, j), so a resumed run reads the same windows. Caches one epoch's permutation.
class PoolOrder {
 public:
  PoolOrder(int64_t n_windows, uint64_t seed) : n_(n_windows), seed_(seed) {}
  int64_t at(int64_t j);
  // The windows of step `step` with `batch` samples each.
  std::vector<TargetRows> batch(const RouterTargets& targets, int step, int batch);

 private:
  int64_t n_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;
};

std::string pct(double x);  // "12.3%"; "-" for NaN

// Loads a checkpoint into `a` and checks its "fingerprint" (the options it was made with) equals
// `fingerprint`: a resumed run must continue the same run. Throws what libtorch throws.
Status open_checkpoint(const std::string& path, const std::string& fingerprint,
                       torch::serialize::InputArchive& a);

// The export dtype: `name` (f32, f16, bf16) or, when empty, the backbone's float dtype.
Result<DType> out_dtype(const std::string& name, const Model& m);

// The MoE `src` with new parameters where given (backbone, experts, router, layer gates; null /
// undefined keeps src's), written as a safetensors MoE directory with src's tokenizer files.
Status write_moe(const Model& src, LlamaTorch* backbone, MoeExperts* experts, LlamaTorch* router,
                 const torch::Tensor& gates, const std::string& dir, DType type);

struct MoeSetup {
  std::unique_ptr<Model> moe;
  std::vector<Domain> domains;
};
// Loads the MoE (or, with allow_dense, a pruned dense model) and the corpus's domains; checks the
// vocabularies agree and seq_len fits. Sets the BLAS threads.
Result<MoeSetup> open_moe(const std::string& moe_dir, const std::string& corpus, int seq_len,
                          int threads, bool allow_dense = false);

// `rme finetune --memory bounded` (finetune_bounded.cc): takes over the opened MoE.
Status finetune_bounded(const FinetuneOptions& o, MoeSetup s);

}  // namespace rme
