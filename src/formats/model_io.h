// formats: loading a model (GGUF file, Hugging Face directory, llama2.c .bin) with its tokenizer,
// and writing one as GGUF or as a Hugging Face directory.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "formats/weight_check.h"
#include "model/type_choice.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace rme {

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null if the model ships none
};

struct LoadOptions {
  // llama2.c: its tokenizer.bin (default: beside the checkpoint). GGUF / HF: an override, a
  // directory holding tokenizer.json or tokenizer.model (its vocabulary at most the model's).
  std::string tokenizer_path;
  // NaN/Inf scan after loading (weight_check.h): quick (warnings) unless asked for all or none.
  WeightCheck check_weights = WeightCheck::kQuick;
};

enum class ModelFormat { kGguf, kHf, kLlama2c };
// Decides by path: a directory is HF, a file starting with "GGUF" is GGUF, else llama2.c.
Result<ModelFormat> detect_format(const std::string& path);

Result<LoadedModel> load_model(const std::string& path, const LoadOptions& options = {});

// Copies the model's weights out of its mapped files into private memory (MappedFile::detach),
// so a checkpoint replaced or truncated in place cannot crash a long-running process. With
// skip_experts, routed experts' byte ranges are not copied (an ExpertStore reads them).
Status detach_model_files(const Model& model, bool skip_experts);
// Faults every weight page in (and with lock pins it: mlock) so a server is fast from its first
// request; skip_experts as above. Fails only when locking exceeds the memlock limit.
Status fault_in_model_files(const Model& model, bool skip_experts, bool lock);
Result<LoadedModel> load_gguf_model(const std::string& path);
Result<LoadedModel> load_hf_model(const std::string& dir);
Result<LoadedModel> load_llama2c_model(const std::string& path, const std::string& tokenizer_path);

// `type` converts the matrices (norms, biases and layer gates stay f32; no base keeps each
// tensor's stored type; the _M mixes pick per matrix). Rows whose length is not a multiple of the
// chosen type's block fall back as dtype_for_row says (logged). Conversions run on every core.
Status write_gguf_model(const Model& model, const Tokenizer* tokenizer, const std::string& path,
                        const TypeChoice& type);
// Writes config.json, model.safetensors and the tokenizer (copied from an HF source directory,
// else generated as tokenizer.json). type must be f32, f16 or bf16 (default: f32 for
// quantized sources, else the stored type).
Status write_hf_model(const Model& model, const Tokenizer* tokenizer, const std::string& dir,
                      std::optional<DType> type);

// Copies the tokenizer files present in directory `from` (tokenizer.json/.model,
// tokenizer_config.json, generation_config.json, special_tokens_map.json) to `to`; returns how
// many. Nothing when from == to.
Result<int> copy_tokenizer_files(const std::string& from, const std::string& to);

}  // namespace rme
