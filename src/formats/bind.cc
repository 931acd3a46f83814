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
  }
}

Status bind_weights(Model& m, const TensorLookup& lookup, NameScheme scheme,
                    const std::string& path) {
  const LlamaConfig& c = m.config;
  m.weights.layers.assign(c.n_layer, LayerWeights{});
  const bool has_output = lookup(tensor_name({WeightId::Kind::kOutput, -1}, scheme)) != nullptr;
  m.config.tied_output = !has_output;
  for (const WeightId& id : all_weight_ids(c.n_layer, has_output)) {
    const std::string name = tensor_name(id, scheme);
    const Tensor* t = lookup(name);
    if (t == nullptr) return not_found(path + ": tensor '" + name + "' is missing");
    const std::vector<int64_t> want = expected_shape(id, c);
    std::vector<int64_t> got = t->shape;
    if (is_norm(id) && got.size() == 2 && got[0] == 1) got.erase(got.begin());
    if (got != want)
      return corrupt(path + ": tensor '" + name + "' shape " + shape_string(t->shape) +
                     " != " + shape_string(want));
    if (is_norm(id)) {
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

}  // namespace rme
