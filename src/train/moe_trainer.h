// train: Read-ME's training — distilling the pre-gating router (and the layer-wise baseline's
// gates) from the dense model's activations, and fine-tuning the experts with the router frozen,
// alternating the two in rounds.
#pragma once

#include <string>

#include "core/status.h"

namespace rme {

struct RouterTrainOptions {
  std::string moe_dir, dense_path, corpus_dir, out_dir;  // dense: default = the MoE's parent
  int steps = 600, batch = 16, seq_len = 128, warmup = 30;
  double lr = 3e-3, min_lr = 3e-4, weight_decay = 0.01;
  // Target distribution over experts: softmax(mass share / tau); the oracle label is its argmax.
  double tau = 0.02;
  int router_dim = 0, router_layers = 1, router_heads = 4, router_ff = 0;  // 0 = defaults
  int eval_tokens = 8192;  // per domain, from the validation shards
  int checkpoint_every = 100;
  int threads = 0;
  uint64_t seed = 1;
  std::string export_dtype;  // f32, f16, bf16; empty = as the MoE's backbone
  // Router targets (moefy/router_targets.h): made once by the engine from the dense parent into
  // targets_dir (default out_dir/train/targets) and reused when they match these options.
  std::string targets_dir;
  int64_t target_tokens = 0;  // training windows' tokens; 0 = min(steps x batch x seq_len, 2^18)
  uint64_t target_seed = 1;   // which windows
  std::string gate_inputs = "auto";  // FFN inputs for the layer-wise gates: auto, on, off
  int64_t gate_budget_mb = 4096;     // auto: stored when they take at most this much disk
};

// Writes out_dir (the MoE with router and layer gates), out_dir/train/ (router_log.csv,
// router_accuracy.png, checkpoint). Resumes from the checkpoint when present.
Status train_router(const RouterTrainOptions& options);

struct FinetuneOptions {
  std::string moe_dir, corpus_dir, out_dir;
  // "router" (Read-ME) or "layer-gate" (the layer-wise baseline's gates, frozen). A model without
  // experts (a pruned dense model) is tuned as a plain LM.
  std::string routing = "router";
  int rounds = 1;
  int steps = 300;         // expert-tuning steps per round
  int router_steps = 150;  // router-tuning steps between rounds
  int batch = 16, seq_len = 128, warmup = 20;
  double lr = 3e-4, router_lr = 1e-3, decay = 0.8;  // learning rates x decay^round
  double tau = 0.02, weight_decay = 0.01;
  int eval_tokens = 8192;
  int checkpoint_every = 50;
  int threads = 0;
  uint64_t seed = 1;  // data order; the same seed gives every model the same batches
  int top_k = 0;      // experts mixed per token while tuning (and exported); 0 = the model's
  std::string export_dtype;
  int kill_at_step = -1;  // testing: SIGKILL after this global step
  // full: every parameter trainable in f32 (AdamW: 16 bytes a parameter). bounded: frozen 16-bit
  // storage, the shared experts and one routed expert at a time trainable, layer-wise
  // recomputation (train/bounded_moe.h), router phases as round_targets says. auto: full when it
  // fits in 80% of the memory available, else bounded.
  std::string memory = "auto";
  // bounded: what router rounds distill from. "current": the MoE as tuned so far (each expert's
  // activation-mass share on the MoE's own hidden states, as the full path does every router
  // step), computed once per round on round_target_tokens tokens (0: min(router_steps x batch x
  // seq_len, 32,768)). "dense": the dense parent's targets in targets_dir (default
  // moe_dir/train/targets), which cost nothing more: the choice for a 7B parent.
  std::string round_targets = "current";
  int64_t round_target_tokens = 0;
  std::string targets_dir;
  int layer_groups = 0;       // bounded: layers an expert is tuned in at once, in groups; 0 = auto
  int64_t memory_budget = 0;  // bytes auto decisions plan for; 0 = MemAvailable at start
};

// Writes out_dir (the tuned MoE) and out_dir/train/ (finetune_log.csv, finetune_loss.png,
// checkpoint); resumes from the checkpoint when present.
Status finetune_moe(const FinetuneOptions& options);

}  // namespace rme
