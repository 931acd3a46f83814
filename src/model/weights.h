// model: typed weight views of a dense Llama model and the Model that owns their storage.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "kernels/matmul.h"
#include "model/config.h"
#include "model/moe.h"
#include "tensor/tensor.h"

namespace rme {

// One routed expert's SwiGLU slice in one layer: [W, D], [W, D], [D, W].
struct ExpertWeights {
  MatView gate{}, up{}, down{};
};

struct LayerWeights {
  const float* attn_norm = nullptr;  // [D]
  MatView wq{}, wk{}, wv{}, wo{};    // [H*Dh, D], [Hkv*Dh, D], [Hkv*Dh, D], [D, H*Dh]
  // With config.attn_bias: [H*Dh], [Hkv*Dh], [Hkv*Dh] added to q, k, v (before RoPE); else null.
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;
  const float* ffn_norm = nullptr;  // [D]
  // [F, D], [F, D], [D, F]: the dense FFN, or an MoE's shared expert (F = ffn_width(layer)).
  MatView w_gate{}, w_up{}, w_down{};
  std::vector<ExpertWeights> experts;  // [n_expert]; empty for dense models
  MatView layer_gate{};                // [n_expert, D] f32, only for the layer-wise baseline
};

struct ModelWeights {
  MatView tok_embd{};  // [V, D]
  std::vector<LayerWeights> layers;
  const float* out_norm = nullptr;  // [D]
  MatView output{};                 // [V, D]; same data as tok_embd when tied
};

// Identifies one weight without naming it as a string (names live in formats/).
struct WeightId {
  enum class Kind {
    kTokEmbd,
    kOutNorm,
    kOutput,
    kAttnNorm,
    kWq,
    kWk,
    kWv,
    kWo,
    kBq,  // q/k/v biases (1-D, f32)
    kBk,
    kBv,
    kFfnNorm,
    kGate,
    kUp,
    kDown,
    kExpGate,
    kExpUp,
    kExpDown,
    kLayerGate,
  };
  Kind kind;
  int layer = -1;       // for per-layer kinds
  int expert = -1;      // for kExp*
  bool router = false;  // a weight of the model's pre-gating router (its own small Llama)
};

// A loaded model: configuration, weight views and the storage they point into (mapped files
// and buffers rme allocated for converted tensors). Immutable after loading; share across
// threads freely. Moving keeps views valid (storage is heap-held).
struct Model {
  LlamaConfig config;
  ModelWeights weights;
  std::vector<std::shared_ptr<MappedFile>> files;
  std::vector<std::shared_ptr<Buffer>> buffers;
  std::string source;  // path it came from
  std::string format;  // "gguf", "safetensors", "llama2c"
  MoeConfig moe;       // n_expert == 0 for dense models
  // Weights are random numbers (benchmarks, timing models): outputs are meaningless. Stored as
  // GGUF key rme.random_weights.
  bool random_weights = false;
  // The pre-gating router of an MoE: a causal Llama over token ids whose output has n_expert rows
  // (config.n_out). Null for dense models and for MoEs not yet given a router.
  std::shared_ptr<Model> router;
  // A model to be written, not run (moefy of a large parent): a weight whose view has a shape
  // but no data is made by `deferred` when a writer reaches it, as f32 [n_out, n_in] rows (the
  // view's dtype), so the carved experts never sit in memory together. Null for every model
  // that inference sees (Forward refuses a model that has it).
  std::function<Result<std::shared_ptr<Buffer>>(const WeightId&)> deferred;

  // Visits every distinct weight (the tied output is skipped) with its id and view; norms come
  // as 1-row f32 views. Order: backbone (dense FFN / shared expert in place), layer gates, router,
  // then each expert's slices for all layers together (writers keep them contiguous).
  void for_each_weight(const std::function<void(const WeightId&, const MatView&)>& fn) const;
  // Whether a matrix is in a kernel's layout instead of rows (interleave_weights.h): such a
  // model runs, but writers refuse it.
  bool interleaved() const;
  // Points `v` (one of this model's views) at `now`, whose bytes `storage` holds (kept in
  // `buffers`), and gives v's old storage back: its pages of a mapped file released
  // (MappedFile::release), or a buffer that held exactly those bytes dropped; kept when the old
  // bytes are the token embedding's (a tied output: lookups still read them). For load-time
  // rewrites of matrices (interleave_weights.h, bf16_weights.h).
  void replace_storage(MatView& v, std::shared_ptr<Buffer> storage, const MatView& now);
  // Bytes of weights (distinct storage).
  size_t weight_bytes() const;
  // Weight bytes one decode step reads: every matrix once, one embedding row, and for an MoE the
  // shared experts, the router, and top_k experts (their mean size; 0 = the model's top_k).
  size_t decode_weight_bytes(int top_k = 0) const;
};

// Copies f32 values into a buffer owned by the model and returns a pointer to them.
const float* model_own_floats(Model& m, const std::vector<float>& values);

}  // namespace rme
