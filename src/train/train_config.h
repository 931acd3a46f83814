// train: TrainConfig, the hyperparameters of a dense training run (read from JSON).
#pragma once

#include <map>
#include <string>

#include "core/status.h"
#include "model/config.h"

namespace rme {

// Learning rate at `step` (from 0): linear warmup over `warmup` steps to lr, then cosine from lr
// to min_lr at `steps`. The one schedule of dense training, router training and fine-tuning.
double cosine_lr(int step, int steps, int warmup, double lr, double min_lr);

struct TrainConfig {
  LlamaConfig model;  // n_vocab comes from the corpus
  int seq_len = 256;
  int batch_size = 16;  // sequences per micro-batch
  int grad_accum = 1;   // micro-batches per optimizer step
  int steps = 1000;
  int warmup_steps = 100;
  double lr = 1e-3, min_lr = 1e-4;  // cosine from lr to min_lr after warmup
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, grad_clip = 1.0;
  int eval_every = 100;
  int eval_tokens = 16384;  // per domain, from the validation shard
  int checkpoint_every = 100;
  std::map<std::string, double> mixture;  // domain -> weight; empty = every domain weight 1
  uint64_t seed = 1234;
  int threads = 0;          // 0 = all cores
  std::string source_json;  // the config as read (stored in checkpoints to detect changes)

  int64_t tokens_per_step() const { return int64_t{seq_len} * batch_size * grad_accum; }
  double lr_at(int step) const;  // step counts from 0: cosine_lr with this config's values
};

Result<TrainConfig> read_train_config(const std::string& path);

}  // namespace rme
