// train: exporting a LlamaTorch as a Hugging Face directory the engine loads.
#pragma once

#include <string>

#include "core/status.h"
#include "tensor/dtype.h"
#include "train/torch_llama.h"

namespace rme {

// Writes dir/config.json + dir/model.safetensors (dtype f32, f16 or bf16) through formats'
// writer, then copies tokenizer.model / tokenizer.json / tokenizer_config.json from
// tokenizer_dir when given.
Status export_hf(LlamaTorchImpl& model, const std::string& dir, DType dtype,
                 const std::string& tokenizer_dir = "");

}  // namespace rme
