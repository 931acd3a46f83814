// formats: format detection and dispatch for load_model.
#include <cstring>
#include <fstream>

#include "core/file.h"
#include "formats/model_io.h"
#include "formats/moe_meta.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/llama2c_vocab.h"

namespace rme {

Result<ModelFormat> detect_format(const std::string& path) {
  if (is_directory(path)) return ModelFormat::kHf;
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path + ": no such file or directory");
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return ModelFormat::kGguf;
  return ModelFormat::kLlama2c;
}

namespace {

Result<LoadedModel> load_model_unguarded(const std::string& path, const LoadOptions& options) {
  RME_ASSIGN_OR_RETURN(ModelFormat f, detect_format(path));
  switch (f) {
    case ModelFormat::kGguf:
    case ModelFormat::kHf: {
      RME_ASSIGN_OR_RETURN(LoadedModel m,
                           f == ModelFormat::kGguf ? load_gguf_model(path) : load_hf_model(path));
      if (!options.tokenizer_path.empty()) {
        // An override: an HF-style directory (tokenizer.json or tokenizer.model) for a model
        // that ships none, e.g. a random-weight benchmark GGUF.
        if (!is_directory(options.tokenizer_path))
          return invalid_argument(options.tokenizer_path +
                                  ": a tokenizer override for GGUF / HF models is a directory "
                                  "holding tokenizer.json or tokenizer.model");
        RME_ASSIGN_OR_RETURN(m.tokenizer, load_hf_tokenizer(options.tokenizer_path));
        if (m.tokenizer->n_vocab() > m.model->config.n_vocab)
          return invalid_argument(
              options.tokenizer_path + ": tokenizer of " + std::to_string(m.tokenizer->n_vocab()) +
              " tokens for a model of " + std::to_string(m.model->config.n_vocab));
      }
      return m;
    }
    case ModelFormat::kLlama2c: {
      std::string tok = options.tokenizer_path;
      if (tok.empty()) {  // llama2.c convention: tokenizer.bin beside the checkpoint
        std::string dir =
            path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
        if (file_exists(dir + "/tokenizer.bin")) tok = dir + "/tokenizer.bin";
      }
      return load_llama2c_model(path, tok);
    }
  }
  return unsupported(path + ": unknown format");
}

}  // namespace

namespace {

// Each mapped file of the model with its routed experts' byte ranges (empty unless skip_experts).
Result<std::vector<std::pair<MappedFile*, std::vector<std::pair<uint64_t, uint64_t>>>>>
files_and_holes(const Model& model, bool skip_experts) {
  std::vector<ExpertRange> ranges;
  if (skip_experts && model.moe.is_moe()) {
    RME_ASSIGN_OR_RETURN(ranges, expert_ranges(model));
  }
  std::vector<std::pair<MappedFile*, std::vector<std::pair<uint64_t, uint64_t>>>> out;
  for (const auto& f : model.files) {
    out.push_back({f.get(), {}});
    for (const ExpertRange& r : ranges)
      if (r.file == f.get() && r.bytes > 0) out.back().second.emplace_back(r.offset, r.bytes);
  }
  return out;
}

}  // namespace

Status detach_model_files(const Model& model, bool skip_experts) {
  RME_ASSIGN_OR_RETURN(auto files, files_and_holes(model, skip_experts));
  for (auto& [f, holes] : files) RME_RETURN_IF_ERROR(f->detach(std::move(holes)));
  return Status::Ok();
}

Status fault_in_model_files(const Model& model, bool skip_experts, bool lock) {
  RME_ASSIGN_OR_RETURN(auto files, files_and_holes(model, skip_experts));
  for (auto& [f, holes] : files) RME_RETURN_IF_ERROR(f->fault_in(std::move(holes), lock));
  return Status::Ok();
}

Result<LoadedModel> load_model(const std::string& path, const LoadOptions& options) {
  // The readers check types and ranges themselves; this is the net under them, so that no input
  // file can end the process with an uncaught exception (std::terminate) instead of an error.
  try {
    RME_ASSIGN_OR_RETURN(LoadedModel m, load_model_unguarded(path, options));
    RME_RETURN_IF_ERROR(check_weights(*m.model, options.check_weights));
    return m;
  } catch (const std::bad_alloc&) {
    return resource_exhausted(path + ": out of memory while loading");
  } catch (const std::exception& e) {
    return corrupt(path + ": " + e.what());
  }
}

}  // namespace rme
