// train: turning torch parameters back into engine Models, and exporting a LlamaTorch as a
// Hugging Face directory the engine loads.
#pragma once

#include <string>

#include "core/status.h"
#include "model/weights.h"
#include "tensor/dtype.h"
#include "train/torch_llama.h"

namespace rme {

// A Model holding f32 copies of the module's parameters (config rope_style: rotate-half).
Model model_from_torch(LlamaTorchImpl& model);
// A [rows, cols] f32 copy of a 2-D tensor owned by `m`.
MatView own_matrix(Model& m, const torch::Tensor& t);

// Writes dir/config.json + dir/model.safetensors (dtype f32, f16 or bf16) through formats'
// writer, then copies tokenizer.model / tokenizer.json / tokenizer_config.json from
// tokenizer_dir when given.
Status export_hf(LlamaTorchImpl& model, const std::string& dir, DType dtype,
                 const std::string& tokenizer_dir = "");

}  // namespace rme
