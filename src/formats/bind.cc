// formats: shape/dtype-checked binding of named tensors to Model weights.
#include "formats/bind.h"

#include <vector>

#include "tensor/quant.h"

namespace rme {

void set_weight(Model& m, const WeightId& id, const MatView& v) {
  using K = WeightId::Kind;
  ModelWeights& w = m.weights;
  auto* f = static_cast<const float*>(v.data);
  switch (id.kind) {
    case K::kTokEmbd:
      w.tok_embd = v;
      break;
    case K::kOutNorm:
      w.out_norm = f;
      break;
    case K::kOutput:
      w.output = v;
      break;
    case K::kAttnNorm:
      w.layers[id.layer].attn_norm = f;
      break;
    case K::kWq:
      w.layers[id.layer].wq = v;
      break;
    case K::kWk:
      w.layers[id.layer].wk = v;
      break;
    case K::kWv:
      w.layers[id.layer].wv = v;
      break;
    case K::kWo:
      w.layers[id.layer].wo = v;
      break;
    case K::kBq:
      w.layers[id.layer].bq = f;
      break;
    case K::kBk:
      w.layers[id.layer].bk = f;
      break;
    case K::kBv:
      w.layers[id.layer].bv = f;
      break;
    case K::kFfnNorm:
      w.layers[id.layer].ffn_norm = f;
      break;
    case K::kGate:
      w.layers[id.layer].w_gate = v;
      break;
    case K::kUp:
      w.layers[id.layer].w_up = v;
      break;
    case K::kDown:
      w.layers[id.layer].w_down = v;
      break;
    case K::kExpGate:
      w.layers[id.layer].experts[id.expert].gate = v;
      break;
    case K::kExpUp:
      w.layers[id.layer].experts[id.expert].up = v;
      break;
    case K::kExpDown:
      w.layers[id.layer].experts[id.expert].down = v;
      break;
    case K::kLayerGate:
      w.layers[id.layer].layer_gate = v;
      break;
  }
}

Status bind_weights(Model& m, const TensorLookup& lookup, NameScheme scheme,
                    const std::string& path) {
  const LlamaConfig& c = m.config;
  m.weights.layers.assign(c.n_layer, LayerWeights{});
  const bool has_output = lookup(tensor_name({WeightId::Kind::kOutput, -1}, scheme)) != nullptr;
  m.config.tied_output = !has_output;
  for (const WeightId& id : all_weight_ids(c.n_layer, has_output, c.attn_bias)) {
    const std::string name = tensor_name(id, scheme);
    const Tensor* t = lookup(name);
    const std::vector<int64_t> want = expected_shape(id, c);
    // A layer whose FFN width is 0 (an MoE whose experts share no channel) may omit its FFN.
    if (t == nullptr && id.layer >= 0 && c.ffn_width(id.layer) == 0 &&
        (id.kind == WeightId::Kind::kGate || id.kind == WeightId::Kind::kUp ||
         id.kind == WeightId::Kind::kDown)) {
      set_weight(m, id, MatView{DType::kF32, want[0], want[1], nullptr});
      continue;
    }
    if (t == nullptr) return not_found(path + ": tensor '" + name + "' is missing");
    std::vector<int64_t> got = t->shape;
    if (is_vector(id) && got.size() == 2 && got[0] == 1) got.erase(got.begin());
    if (got != want)
      return corrupt(path + ": tensor '" + name + "' shape " + shape_string(t->shape) +
                     " != " + shape_string(want));
    if (is_vector(id)) {
      std::vector<float> f(static_cast<size_t>(want[0]));
      dequantize_row(t->dtype, t->data, f.data(), want[0]);
      set_weight(m, id, MatView{DType::kF32, 1, want[0], model_own_floats(m, f)});
    } else {
      set_weight(m, id, MatView{t->dtype, want[0], want[1], t->data});
    }
  }
  if (!has_output) m.weights.output = m.weights.tok_embd;
  return Status::Ok();
}

Status bind_moe_weights(Model& m, const TensorLookup& lookup, NameScheme scheme,
                        const std::string& path) {
  using K = WeightId::Kind;
  const LlamaConfig& c = m.config;
  const MoeConfig& moe = m.moe;
  auto matrix = [&](const WeightId& id, int64_t rows, int64_t cols, bool f32) -> Status {
    const std::string name = tensor_name(id, scheme);
    const Tensor* t = lookup(name);
    if (t == nullptr && rows * cols == 0) {  // an expert without channels in this layer
      set_weight(m, id, MatView{DType::kF32, rows, cols, nullptr});
      return Status::Ok();
    }
    if (t == nullptr) return not_found(path + ": tensor '" + name + "' is missing");
    if (t->shape != std::vector<int64_t>{rows, cols})
      return corrupt(path + ": tensor '" + name + "' shape " + shape_string(t->shape) +
                     " != " + shape_string({rows, cols}));
    if (f32 && t->dtype != DType::kF32) {
      std::vector<float> f(static_cast<size_t>(rows * cols));
      for (int64_t r = 0; r < rows; ++r)
        dequantize_row(t->dtype,
                       static_cast<const uint8_t*>(t->data) + r * dtype_row_bytes(t->dtype, cols),
                       &f[r * cols], cols);
      set_weight(m, id, MatView{DType::kF32, rows, cols, model_own_floats(m, f)});
    } else {
      set_weight(m, id, MatView{t->dtype, rows, cols, t->data});
    }
    return Status::Ok();
  };
  for (int l = 0; l < c.n_layer; ++l) {
    m.weights.layers[l].experts.assign(moe.n_expert, ExpertWeights{});
    for (int e = 0; e < moe.n_expert; ++e) {
      const int64_t W = moe.expert_width(e, l);
      RME_RETURN_IF_ERROR(matrix({K::kExpGate, l, e}, W, c.n_embd, false));
      RME_RETURN_IF_ERROR(matrix({K::kExpUp, l, e}, W, c.n_embd, false));
      RME_RETURN_IF_ERROR(matrix({K::kExpDown, l, e}, c.n_embd, W, false));
    }
    if (moe.has_layer_gate)
      RME_RETURN_IF_ERROR(matrix({K::kLayerGate, l}, moe.n_expert, c.n_embd, true));
  }
  return Status::Ok();
}

}  // namespace rme
