// tests/util: tiny model generation and test-side writers.
#include "tiny_model.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <span>

#include "core/check.h"
#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/forward.h"
#include "tensor/quant.h"

namespace rme::test {
namespace {

std::vector<float> randn(std::mt19937_64& rng, size_t n, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// HF rotate_half rows -> interleaved rows for n_head heads (what llama.cpp's converter does).
std::vector<float> to_interleaved(const std::vector<float>& w, int n_head, int head_dim, int cols) {
  std::vector<float> out(w.size());
  const int half = head_dim / 2;
  for (int h = 0; h < n_head; ++h)
    for (int i = 0; i < half; ++i)
      for (int c = 0; c < cols; ++c) {
        out[((h * head_dim) + 2 * i) * cols + c] = w[((h * head_dim) + i) * cols + c];
        out[((h * head_dim) + 2 * i + 1) * cols + c] = w[((h * head_dim) + half + i) * cols + c];
      }
  return out;
}

// Interleaved rows -> HF rotate_half rows (the inverse of to_interleaved).
std::vector<float> from_interleaved(const std::vector<float>& w, int n_head, int head_dim,
                                    int cols) {
  std::vector<float> out(w.size());
  const int half = head_dim / 2;
  for (int h = 0; h < n_head; ++h)
    for (int i = 0; i < half; ++i)
      for (int c = 0; c < cols; ++c) {
        out[((h * head_dim) + i) * cols + c] = w[((h * head_dim) + 2 * i) * cols + c];
        out[((h * head_dim) + half + i) * cols + c] = w[((h * head_dim) + 2 * i + 1) * cols + c];
      }
  return out;
}

std::vector<uint8_t> encode(const std::vector<float>& v, DType t, int64_t cols) {
  std::vector<uint8_t> out(dtype_row_bytes(t, cols) * (v.size() / cols));
  for (size_t r = 0; r < v.size() / cols; ++r)
    quantize_row(t, v.data() + r * cols, out.data() + r * dtype_row_bytes(t, cols), cols);
  return out;
}

void write_bytes(const std::string& path, const std::string& s) {
  std::ofstream f(path, std::ios::binary);
  f << s;
}

}  // namespace

LlamaConfig tiny_config(int n_vocab, int n_embd, int n_layer, int n_head, int n_head_kv, int n_ff,
                        bool tied) {
  LlamaConfig c;
  c.n_vocab = n_vocab;
  c.n_embd = n_embd;
  c.n_layer = n_layer;
  c.n_head = n_head;
  c.n_head_kv = n_head_kv;
  c.n_ff = n_ff;
  c.n_ctx = 64;
  c.head_dim = n_embd / n_head;
  c.rms_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope_style = RopeStyle::kHalf;
  c.tied_output = tied;
  return c;
}

HfWeights random_weights(const LlamaConfig& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  HfWeights w;
  w.config = c;
  const size_t D = c.n_embd, F = c.n_ff, V = c.n_vocab, QD = c.q_dim(), KV = c.kv_dim();
  const float s = 0.5f / std::sqrt(static_cast<float>(D));  // keeps activations O(1)
  auto norm = [&] {
    auto v = randn(rng, D, 0.1f);
    for (auto& x : v) x += 1.0f;
    return v;
  };
  w.tok_embd = randn(rng, V * D, 1.0f);
  for (int l = 0; l < c.n_layer; ++l) {
    HfWeights::Layer L;
    L.attn_norm = norm();
    L.wq = randn(rng, QD * D, s);
    L.wk = randn(rng, KV * D, s);
    L.wv = randn(rng, KV * D, s);
    L.wo = randn(rng, D * QD, s);
    if (c.attn_bias) {
      L.bq = randn(rng, QD, 0.5f);
      L.bk = randn(rng, KV, 0.5f);
      L.bv = randn(rng, KV, 0.5f);
    }
    L.ffn_norm = norm();
    L.gate = randn(rng, F * D, s);
    L.up = randn(rng, F * D, s);
    L.down = randn(rng, D * F, 0.5f / std::sqrt(static_cast<float>(F)));
    w.layers.push_back(std::move(L));
  }
  w.out_norm = norm();
  if (!c.tied_output) w.output = randn(rng, V * D, s);
  return w;
}

HfWeights round_through(const HfWeights& w, DType t, bool norms) {
  HfWeights r = w;
  auto rt = [&](std::vector<float>& v, int64_t cols) {
    const DType tt = dtype_for_row(t, cols);
    std::vector<uint8_t> enc = encode(v, tt, cols);
    for (size_t row = 0; row < v.size() / cols; ++row)
      dequantize_row(tt, enc.data() + row * dtype_row_bytes(tt, cols), v.data() + row * cols, cols);
  };
  const LlamaConfig& c = w.config;
  rt(r.tok_embd, c.n_embd);
  if (!r.output.empty()) rt(r.output, c.n_embd);
  for (auto& L : r.layers) {
    for (auto* m : {&L.wq, &L.wk, &L.wv, &L.gate, &L.up}) rt(*m, c.n_embd);
    rt(L.wo, c.q_dim());
    rt(L.down, c.n_ff);
  }
  if (norms) {
    rt(r.out_norm, c.n_embd);
    for (auto& L : r.layers) {
      rt(L.attn_norm, c.n_embd);
      rt(L.ffn_norm, c.n_embd);
      for (auto* b : {&L.bq, &L.bk, &L.bv})
        if (!b->empty()) rt(*b, static_cast<int64_t>(b->size()));
    }
  }
  return r;
}

void write_hf_dir(const HfWeights& w, const std::string& dir, DType t, int shards) {
  const LlamaConfig& c = w.config;
  std::filesystem::create_directories(dir);
  struct Item {
    std::string name;
    const std::vector<float>* v;
    std::vector<int64_t> shape;
  };
  std::vector<Item> items = {{"model.embed_tokens.weight", &w.tok_embd, {c.n_vocab, c.n_embd}}};
  for (int l = 0; l < c.n_layer; ++l) {
    const auto& L = w.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    items.push_back({p + "input_layernorm.weight", &L.attn_norm, {c.n_embd}});
    items.push_back({p + "self_attn.q_proj.weight", &L.wq, {c.q_dim(), c.n_embd}});
    items.push_back({p + "self_attn.k_proj.weight", &L.wk, {c.kv_dim(), c.n_embd}});
    items.push_back({p + "self_attn.v_proj.weight", &L.wv, {c.kv_dim(), c.n_embd}});
    items.push_back({p + "self_attn.o_proj.weight", &L.wo, {c.n_embd, c.q_dim()}});
    if (c.attn_bias) {
      items.push_back({p + "self_attn.q_proj.bias", &L.bq, {c.q_dim()}});
      items.push_back({p + "self_attn.k_proj.bias", &L.bk, {c.kv_dim()}});
      items.push_back({p + "self_attn.v_proj.bias", &L.bv, {c.kv_dim()}});
    }
    items.push_back({p + "post_attention_layernorm.weight", &L.ffn_norm, {c.n_embd}});
    items.push_back({p + "mlp.gate_proj.weight", &L.gate, {c.n_ff, c.n_embd}});
    items.push_back({p + "mlp.up_proj.weight", &L.up, {c.n_ff, c.n_embd}});
    items.push_back({p + "mlp.down_proj.weight", &L.down, {c.n_embd, c.n_ff}});
  }
  items.push_back({"model.norm.weight", &w.out_norm, {c.n_embd}});
  if (!c.tied_output) items.push_back({"lm_head.weight", &w.output, {c.n_vocab, c.n_embd}});
  std::vector<std::vector<uint8_t>> bufs;
  for (auto& it : items) bufs.push_back(encode(*it.v, t, it.shape.back()));
  nlohmann::json weight_map;
  for (int s = 0; s < shards; ++s) {
    std::vector<SafetensorsEntry> entries;
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", s + 1, shards);
    const std::string file = shards == 1 ? "model.safetensors" : name;
    for (size_t i = 0; i < items.size(); ++i) {
      if (static_cast<int>(i % shards) != s) continue;
      entries.push_back({items[i].name, t, items[i].shape, bufs[i].data()});
      weight_map[items[i].name] = file;
    }
    RME_CHECK(write_safetensors(dir + "/" + file, entries).ok());
  }
  if (shards > 1)
    write_bytes(
        dir + "/model.safetensors.index.json",
        nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump());
  const char* arch = c.attn_bias            ? "Qwen2ForCausalLM"
                     : c.sliding_window > 0 ? "MistralForCausalLM"
                                            : "LlamaForCausalLM";
  nlohmann::json cfg = {{"architectures", {arch}},
                        {"model_type", c.attn_bias            ? "qwen2"
                                       : c.sliding_window > 0 ? "mistral"
                                                              : "llama"},
                        {"vocab_size", c.n_vocab},
                        {"hidden_size", c.n_embd},
                        {"intermediate_size", c.n_ff},
                        {"num_hidden_layers", c.n_layer},
                        {"num_attention_heads", c.n_head},
                        {"num_key_value_heads", c.n_head_kv},
                        {"max_position_embeddings", c.n_ctx},
                        {"rms_norm_eps", c.rms_eps},
                        {"rope_theta", c.rope_theta},
                        {"tie_word_embeddings", c.tied_output}};
  if (c.sliding_window > 0) cfg["sliding_window"] = c.sliding_window;
  if (c.rope_scaling.type == RopeScaling::Type::kLlama3)
    cfg["rope_scaling"] = {
        {"rope_type", "llama3"},
        {"factor", c.rope_scaling.factor},
        {"low_freq_factor", c.rope_scaling.low_freq_factor},
        {"high_freq_factor", c.rope_scaling.high_freq_factor},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position}};
  write_bytes(dir + "/config.json", cfg.dump(2));
}

void write_gguf(const HfWeights& w, const std::string& path, DType t) {
  const LlamaConfig& c = w.config;
  GgufWriter g;
  // Qwen2 (q/k/v biases) is its own GGUF architecture, with HF's rotate-half Q/K rows.
  const bool qwen2 = c.attn_bias;
  const std::string a = qwen2 ? "qwen2" : "llama";
  g.set_string("general.architecture", a);
  g.set_u32(a + ".context_length", c.n_ctx);
  g.set_u32(a + ".embedding_length", c.n_embd);
  g.set_u32(a + ".block_count", c.n_layer);
  g.set_u32(a + ".feed_forward_length", c.n_ff);
  g.set_u32(a + ".attention.head_count", c.n_head);
  g.set_u32(a + ".attention.head_count_kv", c.n_head_kv);
  g.set_f32(a + ".attention.layer_norm_rms_epsilon", c.rms_eps);
  if (c.sliding_window > 0) g.set_u32(a + ".attention.sliding_window", c.sliding_window);
  g.set_f32(a + ".rope.freq_base", c.rope_theta);
  auto qk = [&](const std::vector<float>& m, int n_head) {
    return qwen2 ? m : to_interleaved(m, n_head, c.head_dim, c.n_embd);
  };
  std::vector<std::vector<uint8_t>> keep;
  auto add = [&](const std::string& name, const std::vector<float>& v, std::vector<int64_t> shape,
                 bool norm) {
    const DType tt = norm ? DType::kF32 : dtype_for_row(t, shape.back());
    keep.push_back(encode(v, tt, shape.back()));
    g.add_tensor(name, tt, shape, keep.back().data());
  };
  add("token_embd.weight", w.tok_embd, {c.n_vocab, c.n_embd}, false);
  for (int l = 0; l < c.n_layer; ++l) {
    const auto& L = w.layers[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", L.attn_norm, {c.n_embd}, true);
    add(p + "attn_q.weight", qk(L.wq, c.n_head), {c.q_dim(), c.n_embd}, false);
    add(p + "attn_k.weight", qk(L.wk, c.n_head_kv), {c.kv_dim(), c.n_embd}, false);
    if (qwen2) {
      add(p + "attn_q.bias", L.bq, {c.q_dim()}, true);
      add(p + "attn_k.bias", L.bk, {c.kv_dim()}, true);
      add(p + "attn_v.bias", L.bv, {c.kv_dim()}, true);
    }
    add(p + "attn_v.weight", L.wv, {c.kv_dim(), c.n_embd}, false);
    add(p + "attn_output.weight", L.wo, {c.n_embd, c.q_dim()}, false);
    add(p + "ffn_norm.weight", L.ffn_norm, {c.n_embd}, true);
    add(p + "ffn_gate.weight", L.gate, {c.n_ff, c.n_embd}, false);
    add(p + "ffn_up.weight", L.up, {c.n_ff, c.n_embd}, false);
    add(p + "ffn_down.weight", L.down, {c.n_embd, c.n_ff}, false);
  }
  add("output_norm.weight", w.out_norm, {c.n_embd}, true);
  if (!c.tied_output) add("output.weight", w.output, {c.n_vocab, c.n_embd}, false);
  RME_CHECK(g.write(path).ok());
}

void write_llama2c(const HfWeights& w, const std::string& path, int version) {
  const LlamaConfig& c = w.config;
  std::string out;
  auto put_i32 = [&](int32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  auto put = [&](const std::vector<float>& v) {
    out.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  };
  auto all = [&](auto member) {
    for (const auto& L : w.layers) put(member(L));
  };
  using L = HfWeights::Layer;
  auto wq = [&](const L& l) { return to_interleaved(l.wq, c.n_head, c.head_dim, c.n_embd); };
  auto wk = [&](const L& l) { return to_interleaved(l.wk, c.n_head_kv, c.head_dim, c.n_embd); };
  const int32_t hdr[7] = {c.n_embd,    c.n_ff,
                          c.n_layer,   c.n_head,
                          c.n_head_kv, c.tied_output || version == 1 ? c.n_vocab : -c.n_vocab,
                          c.n_ctx};
  if (version == 1) {
    put_i32(0x616b3432);
    put_i32(1);
    for (int32_t h : hdr) put_i32(h);
    out.push_back(c.tied_output ? 1 : 0);
    out.resize(256, '\0');
    all([](const L& l) { return l.attn_norm; });
    all([](const L& l) { return l.ffn_norm; });
    put(w.out_norm);
    put(w.tok_embd);
    all(wq);
    all(wk);
    all([](const L& l) { return l.wv; });
    all([](const L& l) { return l.wo; });
    all([](const L& l) { return l.gate; });
    all([](const L& l) { return l.down; });
    all([](const L& l) { return l.up; });
  } else {
    for (int32_t h : hdr) put_i32(h);
    put(w.tok_embd);
    all([](const L& l) { return l.attn_norm; });
    all(wq);
    all(wk);
    all([](const L& l) { return l.wv; });
    all([](const L& l) { return l.wo; });
    all([](const L& l) { return l.ffn_norm; });
    all([](const L& l) { return l.gate; });
    all([](const L& l) { return l.down; });
    all([](const L& l) { return l.up; });
    put(w.out_norm);
    put(std::vector<float>(static_cast<size_t>(c.n_ctx) * c.head_dim, 0.0f));  // freq_cis
  }
  if (!c.tied_output) put(w.output);
  write_bytes(path, out);
}

HfWeights read_gguf_weights(const std::string& path, const LlamaConfig& config) {
  auto shards = GgufFile::open_split(path);
  RME_CHECK(shards.ok());
  auto get = [&](const std::string& name) {
    for (const auto& g : *shards)
      if (const GgufTensorInfo* t = g->find_tensor(name)) {
        const int64_t cols = t->ne[0], rows = t->view.n_elements() / cols;
        std::vector<float> v(static_cast<size_t>(rows * cols));
        const auto* src = static_cast<const uint8_t*>(t->view.data);
        for (int64_t r = 0; r < rows; ++r)
          dequantize_row(t->dtype, src + r * dtype_row_bytes(t->dtype, cols), v.data() + r * cols,
                         cols);
        return v;
      }
    return std::vector<float>();
  };
  HfWeights w;
  w.config = config;
  w.config.rope_style = RopeStyle::kHalf;
  const LlamaConfig& c = w.config;
  w.tok_embd = get("token_embd.weight");
  w.out_norm = get("output_norm.weight");
  if (!c.tied_output) w.output = get("output.weight");
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    HfWeights::Layer L;
    L.attn_norm = get(p + "attn_norm.weight");
    if (config.rope_style == RopeStyle::kHalf) {  // qwen2: HF's layout already
      L.wq = get(p + "attn_q.weight");
      L.wk = get(p + "attn_k.weight");
    } else {
      L.wq = from_interleaved(get(p + "attn_q.weight"), c.n_head, c.head_dim, c.n_embd);
      L.wk = from_interleaved(get(p + "attn_k.weight"), c.n_head_kv, c.head_dim, c.n_embd);
    }
    if (c.attn_bias) {
      L.bq = get(p + "attn_q.bias");
      L.bk = get(p + "attn_k.bias");
      L.bv = get(p + "attn_v.bias");
    }
    L.wv = get(p + "attn_v.weight");
    L.wo = get(p + "attn_output.weight");
    L.ffn_norm = get(p + "ffn_norm.weight");
    L.gate = get(p + "ffn_gate.weight");
    L.up = get(p + "ffn_up.weight");
    L.down = get(p + "ffn_down.weight");
    w.layers.push_back(std::move(L));
  }
  return w;
}

std::vector<float> engine_logits(const Model& m, const std::vector<int>& ids, int max_tokens,
                                 bool int8) {
  KvCache kv(m, static_cast<int>(ids.size()));
  KernelConfig kernels = KernelConfig::best();
  kernels.int8 = int8;
  Forward fwd(m, max_tokens, ThreadPool::global(), kernels);
  std::vector<float> logits(ids.size() * m.config.n_vocab);
  RME_CHECK(fwd.run(ids, 0, kv, logits.data(), true).ok());
  return logits;
}

std::vector<float> batch_then_last_logits(const Model& m, const KernelConfig& cfg,
                                          const std::vector<int>& ids, ThreadPool& pool) {
  Forward fwd(m, 16, pool, cfg);
  if (m.moe.is_moe()) {
    RoutingOptions o;
    o.mode = RoutingOptions::Mode::kRandom;
    o.seed = 3;
    RME_CHECK(fwd.set_routing(o).ok());
  }
  const int V = m.config.n_output();
  std::vector<float> all(ids.size() * V), one(V);
  KvCache kv(m, 32), kv1(m, 32);
  RME_CHECK(fwd.run(ids, 0, kv, all.data(), true).ok());
  RME_CHECK(fwd.run(std::span(ids).first(ids.size() - 1), 0, kv1, one.data(), false).ok());
  RME_CHECK(
      fwd.run(std::span(ids).last(1), static_cast<int>(ids.size()) - 1, kv1, one.data(), false)
          .ok());
  all.insert(all.end(), one.begin(), one.end());
  return all;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<float>::infinity();
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

std::string temp_dir(const std::string& name) {
  auto base = std::filesystem::temp_directory_path() / ("rme_test_" + std::to_string(getpid()));
  auto d = base / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

}  // namespace rme::test
