// train: dense training — data mixture, AdamW with warmup + cosine, clipping, accumulation,
// per-domain validation, atomic resumable checkpoints, CSV + PNG curves, HF export.
#pragma once

#include <string>

#include "core/status.h"
#include "train/train_config.h"

namespace rme {

struct TrainOptions {
  std::string corpus_dir;
  std::string out_dir;
  std::string export_dtype = "bf16";  // f32, f16 or bf16
  int kill_at_step = -1;  // testing: SIGKILL ourselves after this step (proves resumability)
};

// Runs (or resumes, if out_dir holds a checkpoint made with the same config) a training run, then
// exports out_dir/model (config.json, model.safetensors, tokenizer). Progress goes to stderr.
Status train_dense(const TrainConfig& config, const TrainOptions& options);

}  // namespace rme
