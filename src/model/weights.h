// model: typed weight views of a dense Llama model and the Model that owns their storage.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "kernels/matmul.h"
#include "model/config.h"
#include "tensor/tensor.h"

namespace rme {

struct LayerWeights {
  const float* attn_norm = nullptr;    // [D]
  MatView wq{}, wk{}, wv{}, wo{};      // [H*Dh, D], [Hkv*Dh, D], [Hkv*Dh, D], [D, H*Dh]
  const float* ffn_norm = nullptr;     // [D]
  MatView w_gate{}, w_up{}, w_down{};  // [F, D], [F, D], [D, F]
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
    kFfnNorm,
    kGate,
    kUp,
    kDown,
  };
  Kind kind;
  int layer = -1;  // for per-layer kinds
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

  // Visits every distinct weight (the tied output is skipped) with its id and view; norms come
  // as 1-row f32 views.
  void for_each_weight(const std::function<void(const WeightId&, const MatView&)>& fn) const;
  // Bytes of weights (distinct storage).
  size_t weight_bytes() const;
};

// Copies f32 values into a buffer owned by the model and returns a pointer to them.
const float* model_own_floats(Model& m, const std::vector<float>& values);

}  // namespace rme
