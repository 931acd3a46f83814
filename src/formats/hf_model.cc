// formats: Hugging Face Llama directories (config.json + single or sharded safetensors).
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "formats/bind.h"
#include "formats/convert_rows.h"
#include "formats/model_io.h"
#include "formats/moe_meta.h"
#include "formats/safetensors.h"
#include "tokenizer/bpe.h"
#include "tokenizer/hf_tokenizer.h"

namespace rme {
namespace {

using json = nlohmann::json;

Result<json> read_json(const std::string& path) {
  RME_ASSIGN_OR_RETURN(std::string text, read_file(path));
  RME_ASSIGN_OR_RETURN(json j, parse_json(text, path));
  if (!j.is_object()) return corrupt(path + ": not a JSON object");
  return j;
}

Status parse_config(const json& j, const std::string& path, LlamaConfig& c) {
  const JsonFields f(j, path);
  constexpr int64_t kMaxDim = 1 << 30;
  auto get_int = [&](const char* key, int& out, bool required) -> Status {
    if (!required && !f.has(key)) return Status::Ok();
    RME_ASSIGN_OR_RETURN(int64_t v, f.required_integer(key, 0, kMaxDim));
    out = static_cast<int>(v);
    return Status::Ok();
  };
  auto get_float = [&](const json& obj, const char* key, float& out) -> Status {
    RME_ASSIGN_OR_RETURN(double v, JsonFields(obj, path).number(key, out, -1e30, 1e30));
    out = static_cast<float>(v);
    return Status::Ok();
  };
  RME_ASSIGN_OR_RETURN(std::string type, f.string("model_type", "llama"));
  if (type != "llama" && type != "mistral" && type != "qwen2")
    return unsupported(path + ": model_type '" + type + "' (rme runs llama, mistral and qwen2)");
  c.attn_bias = type == "qwen2";  // Qwen2's q/k/v projections carry biases
  RME_RETURN_IF_ERROR(get_int("vocab_size", c.n_vocab, true));
  RME_RETURN_IF_ERROR(get_int("hidden_size", c.n_embd, true));
  RME_RETURN_IF_ERROR(get_int("num_hidden_layers", c.n_layer, true));
  RME_RETURN_IF_ERROR(get_int("num_attention_heads", c.n_head, true));
  RME_RETURN_IF_ERROR(get_int("intermediate_size", c.n_ff, true));
  c.n_head_kv = c.n_head;
  RME_RETURN_IF_ERROR(get_int("num_key_value_heads", c.n_head_kv, false));
  c.n_ctx = 2048;
  RME_RETURN_IF_ERROR(get_int("max_position_embeddings", c.n_ctx, false));
  c.head_dim = c.n_head > 0 ? c.n_embd / c.n_head : 0;
  RME_RETURN_IF_ERROR(get_int("head_dim", c.head_dim, false));
  RME_RETURN_IF_ERROR(get_float(j, "rms_norm_eps", c.rms_eps));
  RME_RETURN_IF_ERROR(get_float(j, "rope_theta", c.rope_theta));
  c.rope_style = RopeStyle::kHalf;
  if (f.has("sliding_window") && j["sliding_window"].is_number_integer()) {
    const int64_t w = j["sliding_window"].get<int64_t>();
    const bool used =
        type == "mistral" || (j.contains("use_sliding_window") && j["use_sliding_window"] == true);
    if (used && w > 0 && w < c.n_ctx) {
      if (type == "mistral") {
        c.sliding_window = static_cast<int>(w);  // every layer, as MistralForCausalLM
      } else {  // Qwen2 windows only layers from max_window_layers on: not modelled
        log_warn(path + ": sliding_window " + std::to_string(w) +
                 " of some layers is not applied (rme attends to every earlier position)");
      }
    }
  }
  if (f.has("rope_scaling")) {
    const json& s = j["rope_scaling"];
    if (!s.is_object()) return f.error("rope_scaling", "an object");
    const JsonFields sf(s, path + ": rope_scaling");
    RME_ASSIGN_OR_RETURN(std::string t, sf.string("type", ""));
    RME_ASSIGN_OR_RETURN(t, sf.string("rope_type", t));
    RopeScaling& rs = c.rope_scaling;
    if (t == "llama3") {
      rs.type = RopeScaling::Type::kLlama3;
      rs.factor = 8.0f;
      rs.low_freq_factor = 1.0f;
      rs.high_freq_factor = 4.0f;
      RME_RETURN_IF_ERROR(get_float(s, "factor", rs.factor));
      RME_RETURN_IF_ERROR(get_float(s, "low_freq_factor", rs.low_freq_factor));
      RME_RETURN_IF_ERROR(get_float(s, "high_freq_factor", rs.high_freq_factor));
      RME_ASSIGN_OR_RETURN(int64_t orig,
                           sf.integer("original_max_position_embeddings", 8192, 1, kMaxDim));
      rs.original_max_position = static_cast<int>(orig);
    } else if (t == "linear") {
      rs.type = RopeScaling::Type::kLinear;
      rs.factor = 1.0f;
      RME_RETURN_IF_ERROR(get_float(s, "factor", rs.factor));
    } else if (!t.empty() && t != "default") {
      return unsupported(path + ": rope_scaling type '" + t + "' (rme supports linear, llama3)");
    }
  }
  RME_ASSIGN_OR_RETURN(c.rope_freq_factors, f.float_array("rme_rope_freq_factors", -1e30, 1e30));
  return c.validate().with_context(path);
}

}  // namespace

Result<LoadedModel> load_hf_model(const std::string& dir) {
  auto m = std::make_unique<Model>();
  const std::string cfg_path = dir + "/config.json";
  RME_ASSIGN_OR_RETURN(json cfg, read_json(cfg_path));
  RME_RETURN_IF_ERROR(parse_config(cfg, cfg_path, m->config));
  m->format = "safetensors";
  if (cfg.contains("rme_moe"))
    RME_RETURN_IF_ERROR(apply_moe_layout(cfg["rme_moe"].dump(), cfg_path, *m));
  // Shards: the index maps tensor names to files; otherwise a single model.safetensors.
  std::map<std::string, std::unique_ptr<SafetensorsFile>> shards;
  std::map<std::string, std::string> where;  // tensor -> shard file
  const std::string index_path = dir + "/model.safetensors.index.json";
  if (file_exists(index_path)) {
    RME_ASSIGN_OR_RETURN(json idx, read_json(index_path));
    if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
      return corrupt(index_path + ": 'weight_map' is missing or not an object");
    for (const auto& [name, file] : idx["weight_map"].items()) {
      if (!file.is_string())
        return corrupt(index_path + ": weight_map['" + name + "'] is not a string");
      std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        return corrupt(index_path + ": shard name '" + f + "' must be a plain file name");
      where[name] = f;
      if (!shards.count(f)) {
        RME_ASSIGN_OR_RETURN(auto sf, SafetensorsFile::open(dir + "/" + f));
        shards[f] = std::move(sf);
      }
    }
  } else {
    RME_ASSIGN_OR_RETURN(auto sf, SafetensorsFile::open(dir + "/model.safetensors"));
    for (const auto& [name, t] : sf->tensors()) where[name] = "model.safetensors";
    shards["model.safetensors"] = std::move(sf);
  }
  RME_ASSIGN_OR_RETURN(const bool tie,
                       JsonFields(cfg, cfg_path).boolean("tie_word_embeddings", false));
  auto lookup = [&](const std::string& name) -> const Tensor* {
    if (tie && name == "lm_head.weight") return nullptr;
    auto it = where.find(name);
    if (it == where.end()) return nullptr;
    return shards[it->second]->find(name);
  };
  std::string first_shard = shards.begin()->second->path();
  RME_RETURN_IF_ERROR(bind_weights(*m, lookup, NameScheme::kHf,
                                   where.count("model.embed_tokens.weight")
                                       ? dir + "/" + where["model.embed_tokens.weight"]
                                       : first_shard));
  for (auto& [f, sf] : shards) m->files.push_back(sf->file());
  m->source = dir;
  if (cfg.contains("rme_moe")) RME_RETURN_IF_ERROR(bind_moe(*m, lookup, NameScheme::kHf, dir));
  LoadedModel out;
  auto tok = load_hf_tokenizer(dir);
  if (tok.ok()) {
    out.tokenizer = std::move(tok).value();
  } else if (tok.status().code() != StatusCode::kNotFound) {
    return tok.status();
  } else {
    log_warn(dir + ": no tokenizer (tokenizer.json / tokenizer.model); text commands unavailable");
  }
  out.model = std::move(m);
  return out;
}

Result<int> copy_tokenizer_files(const std::string& from, const std::string& to) {
  if (from == to) return 0;
  int copied = 0;
  for (const char* f : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                        "generation_config.json", "special_tokens_map.json"}) {
    const std::string src = from + "/" + f;
    if (!file_exists(src)) continue;
    RME_ASSIGN_OR_RETURN(std::string bytes, read_file(src));
    RME_RETURN_IF_ERROR(write_file_atomic(to + "/" + f, bytes));
    ++copied;
  }
  return copied;
}

Status write_hf_model(const Model& model, const Tokenizer* tokenizer, const std::string& dir,
                      std::optional<DType> type) {
  const LlamaConfig& c = model.config;
  if (model.interleaved())
    return invalid_argument(model.source +
                            ": weights interleaved for this CPU's kernels cannot be written; "
                            "write the model as loaded");
  if (type && dtype_is_quantized(*type))
    return invalid_argument("safetensors output stores f32, f16 or bf16, not " +
                            std::string(dtype_name(*type)) + " (use a .gguf output)");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_error(dir + ": cannot create directory: " + ec.message());
  std::vector<SafetensorsEntry> entries;
  model.for_each_weight([&](const WeightId& id, const MatView& v) {
    const bool norm = is_vector(id);
    if (v.n_out == 0 || v.n_in == 0) return;  // a zero-width shared expert
    DType to = id.kind == WeightId::Kind::kLayerGate
                   ? DType::kF32
                   : type.value_or(dtype_is_quantized(v.dtype) ? DType::kF32 : v.dtype);
    const LlamaConfig& cfg = id.router ? model.router->config : c;
    // Converted (and deferred weights made) as the file is written: one tensor at a time.
    auto produce = weight_producer(model, id, v, to, cfg, RopeStyle::kHalf, NameScheme::kHf);
    // Each expert's slices for all layers form one page-aligned range (one read loads it).
    const bool starts_expert = id.kind == WeightId::Kind::kExpGate && id.layer == 0;
    entries.push_back({tensor_name(id, NameScheme::kHf), to,
                       norm ? std::vector<int64_t>{v.n_in} : std::vector<int64_t>{v.n_out, v.n_in},
                       nullptr, starts_expert ? kPageAlign : 0, std::move(produce)});
  });
  RME_RETURN_IF_ERROR(write_safetensors(dir + "/model.safetensors", entries, {{"format", "pt"}}));

  const char* arch = c.attn_bias            ? "Qwen2ForCausalLM"
                     : c.sliding_window > 0 ? "MistralForCausalLM"
                                            : "LlamaForCausalLM";
  json j = {{"architectures", {arch}},
            {"model_type", c.attn_bias            ? "qwen2"
                           : c.sliding_window > 0 ? "mistral"
                                                  : "llama"},
            {"vocab_size", c.n_vocab},
            {"hidden_size", c.n_embd},
            {"intermediate_size", c.n_ff},
            {"num_hidden_layers", c.n_layer},
            {"num_attention_heads", c.n_head},
            {"num_key_value_heads", c.n_head_kv},
            {"head_dim", c.head_dim},
            {"max_position_embeddings", c.n_ctx},
            {"rms_norm_eps", c.rms_eps},
            {"rope_theta", c.rope_theta},
            {"tie_word_embeddings", c.tied_output},
            {"hidden_act", "silu"},
            {"torch_dtype", entries.empty()                    ? "float32"
                            : entries[1].dtype == DType::kBF16 ? "bfloat16"
                            : entries[1].dtype == DType::kF16  ? "float16"
                                                               : "float32"}};
  if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  if (c.rope_scaling.type == RopeScaling::Type::kLlama3) {
    j["rope_scaling"] = {
        {"rope_type", "llama3"},
        {"factor", c.rope_scaling.factor},
        {"low_freq_factor", c.rope_scaling.low_freq_factor},
        {"high_freq_factor", c.rope_scaling.high_freq_factor},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position}};
  } else if (c.rope_scaling.type == RopeScaling::Type::kLinear) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
  }
  if (!c.rope_freq_factors.empty()) j["rme_rope_freq_factors"] = c.rope_freq_factors;
  if (model.moe.is_moe() || !c.n_ff_layer.empty())
    j["rme_moe"] = json::parse(moe_layout_json(model, dir + "/config.json"));
  if (tokenizer) {
    j["bos_token_id"] = tokenizer->special().bos;
    j["eos_token_id"] = tokenizer->special().eos;
  }
  RME_RETURN_IF_ERROR(write_file_atomic(dir + "/config.json", j.dump(2) + "\n"));
  if (tokenizer == nullptr) return Status::Ok();

  // Tokenizer: copy the source directory's files when there are some, else generate.
  if (model.format == "safetensors" && is_directory(model.source)) {
    RME_ASSIGN_OR_RETURN(int copied, copy_tokenizer_files(model.source, dir));
    if (copied > 0) return Status::Ok();
  }
  RME_RETURN_IF_ERROR(write_tokenizer_json(tokenizer->export_vocab(), dir + "/tokenizer.json"));
  const SpecialTokens& s = tokenizer->special();
  auto tok_text = [&](int id) -> json {
    return id >= 0 ? json(tokenizer->token_text(id)) : json(nullptr);
  };
  json tc = {{"bos_token", tok_text(s.bos)},
             {"eos_token", tok_text(s.eos)},
             {"unk_token", tok_text(s.unk)},
             {"add_bos_token", s.add_bos}};
  RME_RETURN_IF_ERROR(write_file_atomic(dir + "/tokenizer_config.json", tc.dump(2) + "\n"));
  json gen = {{"bos_token_id", s.bos}};
  if (s.extra_eos.empty()) {
    gen["eos_token_id"] = s.eos;
  } else {
    json e = {s.eos};
    for (int id : s.extra_eos) e.push_back(id);
    gen["eos_token_id"] = e;
  }
  return write_file_atomic(dir + "/generation_config.json", gen.dump(2) + "\n");
}

}  // namespace rme
