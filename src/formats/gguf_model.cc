// formats: Llama models and their vocabularies in GGUF (llama.cpp's key and tensor names).
#include <cmath>
#include <map>

#include "core/log.h"
#include "formats/bind.h"
#include "formats/convert_rows.h"
#include "formats/gguf.h"
#include "formats/model_io.h"
#include "formats/moe_meta.h"
#include "tokenizer/bpe.h"

namespace rme {
namespace {

Status get_int(const GgufFile& g, const std::string& key, int& out, bool required) {
  const GgufValue* v = g.find(key);
  if (v == nullptr) {
    if (required) return not_found(g.path() + ": metadata '" + key + "' is missing");
    return Status::Ok();
  }
  if (!v->is_int() || v->as_int() < 0 || v->as_int() > (int64_t{1} << 30))
    return corrupt(g.path() + ": metadata '" + key + "' is not an integer in [0, 2^30]");
  out = static_cast<int>(v->as_int());
  return Status::Ok();
}

Status get_float(const GgufFile& g, const std::string& key, float& out) {
  const GgufValue* v = g.find(key);
  if (v == nullptr) return Status::Ok();
  if (v->type == GgufValue::Type::kArray || v->type == GgufValue::Type::kString)
    return corrupt(g.path() + ": metadata '" + key + "' is not a number");
  out = static_cast<float>(v->as_double());
  return Status::Ok();
}

std::string get_string(const GgufFile& g, const std::string& key) {
  const GgufValue* v = g.find(key);
  if (v == nullptr || v->type != GgufValue::Type::kString) return "";
  return std::get<std::string>(v->scalar);
}

Result<std::unique_ptr<Tokenizer>> gguf_tokenizer(const GgufFile& g) {
  const std::string model = get_string(g, "tokenizer.ggml.model");
  if (model.empty() || model == "none") return std::unique_ptr<Tokenizer>();
  const GgufValue* toks = g.find("tokenizer.ggml.tokens");
  if (toks == nullptr || toks->type != GgufValue::Type::kArray ||
      toks->elem_type != GgufValue::Type::kString)
    return corrupt(g.path() + ": tokenizer.ggml.tokens is missing or not a string array");
  BpeVocab v;
  v.tokens = toks->strings;
  const size_t n = v.tokens.size();
  if (model == "llama") {
    v.mode = BpeVocab::Mode::kSentencePiece;
  } else if (model == "gpt2") {
    v.mode = BpeVocab::Mode::kByteLevel;
    // llama.cpp's names for the splitters rme has; others are named, not guessed silently.
    std::string pre = get_string(g, "tokenizer.ggml.pre");
    if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "smaug-bpe" ||
        pre == "falcon3") {
      v.pre_tokenizer = PreTokenizer::kLlama3;
    } else if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
      v.pre_tokenizer = PreTokenizer::kQwen2;
    } else if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "command-r" ||
               pre == "codeshell" || pre == "exaone" || pre == "minerva-7b") {
      v.pre_tokenizer = PreTokenizer::kSmolLM;
    } else {
      v.pre_tokenizer = PreTokenizer::kGpt2;
      if (!pre.empty() && pre != "gpt-2" && pre != "default" && pre != "phi-2" &&
          pre != "roberta-bpe")
        log_warn(g.path() + ": tokenizer.ggml.pre '" + pre +
                 "' is a pre-tokenizer rme does not have; splitting text as GPT-2 does, so "
                 "token ids of text may differ from llama.cpp's");
    }
    v.ignore_merges = v.pre_tokenizer == PreTokenizer::kLlama3;
    v.special.add_bos = false;
  } else {
    return unsupported(g.path() + ": tokenizer.ggml.model '" + model + "' (rme reads llama, gpt2)");
  }
  if (const GgufValue* s = g.find("tokenizer.ggml.scores")) {
    if (s->type != GgufValue::Type::kArray || s->numbers.size() != n)
      return corrupt(g.path() + ": tokenizer.ggml.scores has " + std::to_string(s->numbers.size()) +
                     " entries for " + std::to_string(n) + " tokens");
    for (double d : s->numbers) v.scores.push_back(static_cast<float>(d));
  }
  if (const GgufValue* t = g.find("tokenizer.ggml.token_type")) {
    if (t->type != GgufValue::Type::kArray || t->ints.size() != n)
      return corrupt(g.path() + ": tokenizer.ggml.token_type has " +
                     std::to_string(t->ints.size()) + " entries for " + std::to_string(n) +
                     " tokens");
    for (int64_t x : t->ints) {
      if (x < 1 || x > 6)
        return corrupt(g.path() + ": token type " + std::to_string(x) + " outside 1..6");
      v.types.push_back(static_cast<TokenType>(x));
    }
  }
  // "llama" vocabularies merge by score, as llama.cpp reads them; merges only for "gpt2".
  if (const GgufValue* m = v.mode == BpeVocab::Mode::kByteLevel || v.scores.empty()
                               ? g.find("tokenizer.ggml.merges")
                               : nullptr) {
    if (m->type != GgufValue::Type::kArray || m->elem_type != GgufValue::Type::kString)
      return corrupt(g.path() + ": tokenizer.ggml.merges is not a string array");
    for (const std::string& s : m->strings) {
      size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) return corrupt(g.path() + ": merge '" + s + "' has no space");
      v.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    }
  }
  // A special-token id the vocabulary does not hold means "none", as llama.cpp reads it: its own
  // writers store 0xFFFFFFFF (or -1) for a token the model does not have.
  auto id_key = [&](const char* key, int& slot) -> Status {
    const GgufValue* x = g.find(key);
    if (x == nullptr) return Status::Ok();
    if (!x->is_int()) return corrupt(g.path() + ": metadata '" + key + "' is not an integer");
    const int64_t id = x->as_int();
    const bool none = id < 0 || id == 0xFFFFFFFF;
    if (!none && id >= static_cast<int64_t>(n))
      log_warn(g.path() + ": " + key + " = " + std::to_string(id) + " is not a token of the " +
               std::to_string(n) + "-token vocabulary; ignored");
    slot = none || id >= static_cast<int64_t>(n) ? -1 : static_cast<int>(id);
    return Status::Ok();
  };
  RME_RETURN_IF_ERROR(id_key("tokenizer.ggml.bos_token_id", v.special.bos));
  RME_RETURN_IF_ERROR(id_key("tokenizer.ggml.eos_token_id", v.special.eos));
  RME_RETURN_IF_ERROR(id_key("tokenizer.ggml.unknown_token_id", v.special.unk));
  RME_RETURN_IF_ERROR(id_key("tokenizer.ggml.padding_token_id", v.special.pad));
  int eot = -1;
  RME_RETURN_IF_ERROR(id_key("tokenizer.ggml.eot_token_id", eot));
  if (eot >= 0 && eot != v.special.eos) v.special.extra_eos.push_back(eot);
  if (const GgufValue* b = g.find("tokenizer.ggml.add_bos_token"))
    v.special.add_bos = b->as_int() != 0;
  if (const GgufValue* b = g.find("tokenizer.ggml.add_space_prefix"))
    v.add_space_prefix = b->as_int() != 0;
  auto r = BpeTokenizer::create(std::move(v));
  if (!r.ok()) return r.status().with_context(g.path());
  return std::unique_ptr<Tokenizer>(std::move(r).value());
}

}  // namespace

Result<LoadedModel> load_gguf_model(const std::string& path) {
  RME_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<GgufFile>> shards, GgufFile::open_split(path));
  const GgufFile* g = shards.front().get();  // the model's metadata is in the first shard
  const std::string arch = get_string(*g, "general.architecture");
  if (arch.empty()) return not_found(path + ": metadata 'general.architecture' is missing");
  if (arch != "llama" && arch != "qwen2")
    return unsupported(path + ": architecture '" + arch + "' (rme runs llama and qwen2)");
  // Norms and biases are F32 in every llama/qwen2 GGUF (llama.cpp's converters and quantizer
  // keep 1-D tensors so): another type is a damaged type code whose bytes would be misread.
  for (const auto& shard : shards)
    for (const GgufTensorInfo& t : shard->tensors())
      if (t.ne.size() == 1 && t.dtype != DType::kF32)
        return corrupt(path + ": tensor '" + t.name + "' is 1-D (a norm or bias) of type " +
                       std::string(dtype_name(t.dtype)) + "; " + arch +
                       " GGUF files store those as F32 (a changed type code?)");
  auto m = std::make_unique<Model>();
  LlamaConfig& c = m->config;
  const std::string p = arch + ".";
  RME_RETURN_IF_ERROR(get_int(*g, p + "context_length", c.n_ctx, true));
  RME_RETURN_IF_ERROR(get_int(*g, p + "embedding_length", c.n_embd, true));
  RME_RETURN_IF_ERROR(get_int(*g, p + "block_count", c.n_layer, true));
  RME_RETURN_IF_ERROR(get_int(*g, p + "feed_forward_length", c.n_ff, true));
  RME_RETURN_IF_ERROR(get_int(*g, p + "attention.head_count", c.n_head, true));
  c.n_head_kv = c.n_head;
  RME_RETURN_IF_ERROR(get_int(*g, p + "attention.head_count_kv", c.n_head_kv, false));
  c.head_dim = c.n_head > 0 ? c.n_embd / c.n_head : 0;
  RME_RETURN_IF_ERROR(get_int(*g, p + "attention.key_length", c.head_dim, false));
  int n_rot = c.head_dim;
  RME_RETURN_IF_ERROR(get_int(*g, p + "rope.dimension_count", n_rot, false));
  if (n_rot != c.head_dim)
    return unsupported(path + ": metadata '" + p + "rope.dimension_count' is " +
                       std::to_string(n_rot) + " but the head size is " +
                       std::to_string(c.head_dim) + " (rme rotates whole heads)");
  RME_RETURN_IF_ERROR(get_float(*g, p + "attention.layer_norm_rms_epsilon", c.rms_eps));
  // A Mistral window (llama.cpp's key for windowed models; it does not window "llama" files).
  RME_RETURN_IF_ERROR(get_int(*g, p + "attention.sliding_window", c.sliding_window, false));
  RME_RETURN_IF_ERROR(get_float(*g, p + "rope.freq_base", c.rope_theta));
  if (get_string(*g, p + "rope.scaling.type") == "linear") {
    c.rope_scaling.type = RopeScaling::Type::kLinear;
    RME_RETURN_IF_ERROR(get_float(*g, p + "rope.scaling.factor", c.rope_scaling.factor));
  }
  // llama.cpp's "llama" permutes Q/K rows to the interleaved RoPE pairing; "qwen2" keeps HF's
  // rotate-half pairing (NEOX) and adds q/k/v biases.
  c.rope_style = arch == "qwen2" ? RopeStyle::kHalf : RopeStyle::kInterleaved;
  c.attn_bias = arch == "qwen2";
  auto find_tensor = [&](const std::string& name) -> const GgufTensorInfo* {
    for (const auto& s : shards)
      if (const GgufTensorInfo* t = s->find_tensor(name)) return t;
    return nullptr;
  };
  const GgufTensorInfo* emb = find_tensor("token_embd.weight");
  if (emb == nullptr) return not_found(path + ": tensor 'token_embd.weight' is missing");
  c.n_vocab = static_cast<int>(emb->view.shape[0]);
  if (const GgufTensorInfo* rf = find_tensor("rope_freqs.weight")) {
    if (rf->dtype != DType::kF32 || rf->view.rank() != 1)
      return corrupt(path + ": tensor 'rope_freqs.weight' must be a 1-D f32 vector");
    const float* f = static_cast<const float*>(rf->view.data);
    c.rope_freq_factors.assign(f, f + rf->view.shape[0]);
  }
  RME_RETURN_IF_ERROR(c.validate().with_context(path));
  m->format = "gguf";
  if (const GgufValue* r = g->find("rme.random_weights")) m->random_weights = r->as_int() != 0;
  const std::string layout = get_string(*g, "rme.moe");
  if (!layout.empty()) RME_RETURN_IF_ERROR(apply_moe_layout(layout, path, *m));
  auto lookup = [&](const std::string& name) -> const Tensor* {
    const GgufTensorInfo* t = find_tensor(name);
    return t ? &t->view : nullptr;
  };
  RME_RETURN_IF_ERROR(bind_weights(*m, lookup, NameScheme::kGguf, path));
  for (const auto& s : shards) m->files.push_back(s->file());
  m->source = path;
  if (!layout.empty()) RME_RETURN_IF_ERROR(bind_moe(*m, lookup, NameScheme::kGguf, path));
  LoadedModel out;
  RME_ASSIGN_OR_RETURN(out.tokenizer, gguf_tokenizer(*g));
  if (out.tokenizer && out.tokenizer->n_vocab() != c.n_vocab)
    log_warn(path + ": tokenizer has " + std::to_string(out.tokenizer->n_vocab()) +
             " tokens, the model " + std::to_string(c.n_vocab));
  out.model = std::move(m);
  return out;
}

namespace {

void add_tokenizer(GgufWriter& w, const Tokenizer& tok) {
  const BpeVocab v = tok.export_vocab();
  const bool byte_level = v.mode == BpeVocab::Mode::kByteLevel;
  w.set_string("tokenizer.ggml.model", byte_level ? "gpt2" : "llama");
  if (byte_level)
    w.set_string("tokenizer.ggml.pre", v.pre_tokenizer == PreTokenizer::kLlama3   ? "llama-bpe"
                                       : v.pre_tokenizer == PreTokenizer::kQwen2  ? "qwen2"
                                       : v.pre_tokenizer == PreTokenizer::kSmolLM ? "smollm"
                                                                                  : "gpt-2");
  w.set_strings("tokenizer.ggml.tokens", v.tokens);
  // A "llama" vocabulary is read by scores alone (llama.cpp ignores merges there): scores that
  // rank merges as the merge list does, never all zeros.
  if (!byte_level) w.set_f32s("tokenizer.ggml.scores", spm_scores(v));
  std::vector<int32_t> types;
  for (TokenType t : v.types) types.push_back(static_cast<int32_t>(t));
  w.set_i32s("tokenizer.ggml.token_type", types);
  if (byte_level && !v.merges.empty()) {
    std::vector<std::string> merges;
    for (auto& [a, b] : v.merges) merges.push_back(a + " " + b);
    w.set_strings("tokenizer.ggml.merges", merges);
  }
  const SpecialTokens& s = tok.special();  // the loaded tokenizer's (config files applied)
  if (s.bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", s.bos);
  if (s.eos >= 0) w.set_u32("tokenizer.ggml.eos_token_id", s.eos);
  if (s.unk >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", s.unk);
  if (s.pad >= 0) w.set_u32("tokenizer.ggml.padding_token_id", s.pad);
  if (!s.extra_eos.empty()) w.set_u32("tokenizer.ggml.eot_token_id", s.extra_eos[0]);
  w.set_bool("tokenizer.ggml.add_bos_token", s.add_bos);
  if (!byte_level) w.set_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
}

// llama.cpp's llama_ftype for a file of mostly `t` (its "_M" mixes: medium), which its tools show
// as the file's type (they guess one when the key is absent).
uint32_t llama_file_type(DType t, bool medium) {
  switch (t) {
    case DType::kF32:
      return 0;
    case DType::kF16:
      return 1;
    case DType::kQ4_0:
      return 2;
    case DType::kQ8_0:
      return 7;
    case DType::kQ4_K:
      return medium ? 15 : 14;
    case DType::kQ5_K:
      return medium ? 17 : 16;
    case DType::kQ6_K:
      return 18;
    case DType::kBF16:
      return 32;
  }
  return 0;
}

}  // namespace

Status write_gguf_model(const Model& model, const Tokenizer* tokenizer, const std::string& path,
                        const TypeChoice& type) {
  const LlamaConfig& c = model.config;
  if (model.interleaved())
    return invalid_argument(model.source +
                            ": weights interleaved for this CPU's kernels cannot be written; "
                            "write the model as loaded");
  GgufWriter w;
  // Biased q/k/v is Qwen2's shape: llama.cpp reads it as "qwen2" (rotate-half RoPE, no permuting).
  const std::string arch = c.attn_bias ? "qwen2" : "llama";
  const RopeStyle target = c.attn_bias ? RopeStyle::kHalf : RopeStyle::kInterleaved;
  const std::string p = arch + ".";
  w.set_string("general.architecture", arch);
  w.set_string("general.name", model.random_weights
                                   ? "random weights (rme init-random): outputs are meaningless"
                                   : "rme export");
  if (model.random_weights) w.set_bool("rme.random_weights", true);
  w.set_u32(
      "general.file_type",
      llama_file_type(type.base ? *type.base : model.weights.layers[0].wq.dtype, type.medium));
  w.set_u32(p + "context_length", c.n_ctx);
  w.set_u32(p + "embedding_length", c.n_embd);
  w.set_u32(p + "block_count", c.n_layer);
  w.set_u32(p + "feed_forward_length", c.n_ff);
  w.set_u32(p + "attention.head_count", c.n_head);
  w.set_u32(p + "attention.head_count_kv", c.n_head_kv);
  w.set_u32(p + "attention.key_length", c.head_dim);
  w.set_u32(p + "attention.value_length", c.head_dim);
  w.set_u32(p + "rope.dimension_count", c.head_dim);
  w.set_u32(p + "vocab_size", c.n_vocab);
  w.set_f32(p + "attention.layer_norm_rms_epsilon", c.rms_eps);
  if (c.sliding_window > 0) w.set_u32(p + "attention.sliding_window", c.sliding_window);
  w.set_f32(p + "rope.freq_base", c.rope_theta);
  if (c.rope_scaling.type == RopeScaling::Type::kLinear) {
    w.set_string(p + "rope.scaling.type", "linear");
    w.set_f32(p + "rope.scaling.factor", c.rope_scaling.factor);
  }
  // GGUF expresses Llama-3 scaling as explicit per-pair divisors.
  std::vector<float> factors = c.rope_freq_factors;
  if (c.rope_scaling.type == RopeScaling::Type::kLlama3) {
    LlamaConfig plain = c;
    plain.rope_scaling = {};
    plain.rope_freq_factors.clear();
    std::vector<float> base = plain.rope_inv_freq(), scaled = c.rope_inv_freq();
    factors.resize(base.size());
    for (size_t i = 0; i < base.size(); ++i) factors[i] = base[i] / scaled[i];
  }
  if (tokenizer) {
    add_tokenizer(w, *tokenizer);
  } else {
    // No vocabulary: say so explicitly, which other readers (llama.cpp) accept with vocab_size.
    w.set_string("tokenizer.ggml.model", "none");
  }

  // Rows too short for the asked type's block, per fallback: how many and the first one.
  std::map<std::string, std::pair<int, std::string>> fallbacks;
  if (model.moe.is_moe() || !c.n_ff_layer.empty())
    w.set_string("rme.moe", moe_layout_json(model, path));
  model.for_each_weight([&](const WeightId& id, const MatView& v) {
    const bool norm = is_vector(id);
    if (v.n_out == 0 || v.n_in == 0) return;  // a zero-width shared expert
    const LlamaConfig& own = id.router ? model.router->config : c;
    DType to = norm || id.kind == WeightId::Kind::kLayerGate ? DType::kF32
                                                             : type.pick(id, own.n_layer, v.dtype);
    if (const DType fits = dtype_for_row(to, v.n_in); fits != to) {
      auto& [count, example] =
          fallbacks[std::string(dtype_name(to)) + " -> " + std::string(dtype_name(fits))];
      if (count++ == 0)
        example =
            tensor_name(id, NameScheme::kGguf) + " (row length " + std::to_string(v.n_in) + ")";
      to = fits;
    }
    std::vector<int64_t> shape =
        norm ? std::vector<int64_t>{v.n_in} : std::vector<int64_t>{v.n_out, v.n_in};
    // Each expert's slices for all layers form one page-aligned range (one read loads it).
    const bool starts_expert = id.kind == WeightId::Kind::kExpGate && id.layer == 0;
    // Converted (and deferred weights made) as the file is written: one tensor at a time.
    auto produce = weight_producer(model, id, v, to, own, target, NameScheme::kGguf);
    w.add_tensor(tensor_name(id, NameScheme::kGguf), to, shape, std::move(produce),
                 starts_expert ? 4096 : 0);
  });
  for (const auto& [change, what] : fallbacks)
    log_info(path + ": " + std::to_string(what.first) + " matrices " + change +
             ": rows not a multiple of the block, e.g. " + what.second);
  if (!factors.empty())
    w.add_tensor("rope_freqs.weight", DType::kF32, {static_cast<int64_t>(factors.size())},
                 factors.data());
  return w.write(path);
}

}  // namespace rme
