// tests/util: random tiny Llama models in Hugging Face layout, and independent writers that put
// them into each file format (written here, not with rme's converters, so the readers are checked
// against code that does not share their assumptions).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/kernel_config.h"
#include "model/config.h"
#include "model/weights.h"
#include "tensor/dtype.h"

namespace rme::test {

// All matrices row-major [out, in], Q/K rows in Hugging Face's rotate_half order.
struct HfWeights {
  LlamaConfig config;                             // rope_style is kHalf
  std::vector<float> tok_embd, out_norm, output;  // output empty when tied
  struct Layer {
    std::vector<float> attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down;
    std::vector<float> bq, bk, bv;  // q/k/v biases when config.attn_bias (Qwen2)
  };
  std::vector<Layer> layers;
};

LlamaConfig tiny_config(int n_vocab, int n_embd, int n_layer, int n_head, int n_head_kv, int n_ff,
                        bool tied);
HfWeights random_weights(const LlamaConfig& c, uint64_t seed);

// Rounds every matrix row (and the norms, if `norms` — HF files store them in t too) through
// dtype t: what a reader of a t-typed file sees.
HfWeights round_through(const HfWeights& w, DType t, bool norms = false);

// Writers. HF: config.json + model.safetensors (or `shards` files + index). GGUF: llama.cpp names,
// Q/K rows permuted to the interleaved layout. llama2.c: version 0 (legacy) or 1, interleaved.
void write_hf_dir(const HfWeights& w, const std::string& dir, DType t, int shards = 1);
void write_gguf(const HfWeights& w, const std::string& path, DType t);
void write_llama2c(const HfWeights& w, const std::string& path, int version);

// The weights of a Llama GGUF that rme did not write (e.g. llama.cpp's), every tensor dequantized
// and Q/K rows turned back to HF's rotate_half layout: the oracle's input. Split files: name any
// shard. config: the model's (rope_style set to kHalf in the result).
HfWeights read_gguf_weights(const std::string& path, const LlamaConfig& config);

// The engine's logits [T, V] (row-major) for ids run from position 0 in chunks of max_tokens.
// int8: quantized weights meet int8 activations; otherwise f32 activations, the oracle's math.
std::vector<float> engine_logits(const Model& m, const std::vector<int>& ids, int max_tokens,
                                 bool int8 = false);
// Under `cfg`: all logits of `ids` run as one batch, then the last token's again, alone after
// the rest (an MoE routes randomly, seed 3): [T + 1, V], for batch-invariance checks.
std::vector<float> batch_then_last_logits(const Model& m, const KernelConfig& cfg,
                                          const std::vector<int>& ids, ThreadPool& pool);
// Largest |a[i] - b[i]|; infinity when the sizes differ (so a bound on it fails).
float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);

std::string temp_dir(const std::string& name);  // fresh empty directory under the test tmp dir

}  // namespace rme::test
