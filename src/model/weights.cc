// model: weight traversal.
#include "model/weights.h"

#include <cstring>

namespace rme {

void Model::for_each_weight(const std::function<void(const WeightId&, const MatView&)>& fn) const {
  using K = WeightId::Kind;
  const int64_t d = config.n_embd;
  auto norm = [d](const float* p) { return MatView{DType::kF32, 1, d, p}; };
  fn({K::kTokEmbd, -1}, weights.tok_embd);
  for (int il = 0; il < config.n_layer; ++il) {
    const LayerWeights& l = weights.layers[il];
    fn({K::kAttnNorm, il}, norm(l.attn_norm));
    fn({K::kWq, il}, l.wq);
    fn({K::kWk, il}, l.wk);
    fn({K::kWv, il}, l.wv);
    fn({K::kWo, il}, l.wo);
    fn({K::kFfnNorm, il}, norm(l.ffn_norm));
    fn({K::kGate, il}, l.w_gate);
    fn({K::kUp, il}, l.w_up);
    fn({K::kDown, il}, l.w_down);
  }
  fn({K::kOutNorm, -1}, norm(weights.out_norm));
  if (!config.tied_output) fn({K::kOutput, -1}, weights.output);
  if (moe.has_layer_gate)
    for (int il = 0; il < config.n_layer; ++il)
      fn({K::kLayerGate, il}, weights.layers[il].layer_gate);
  if (router)
    router->for_each_weight([&](const WeightId& id, const MatView& v) {
      WeightId r = id;
      r.router = true;
      fn(r, v);
    });
  for (int e = 0; e < moe.n_expert; ++e)
    for (int il = 0; il < config.n_layer; ++il) {
      const ExpertWeights& x = weights.layers[il].experts[e];
      fn({K::kExpGate, il, e}, x.gate);
      fn({K::kExpUp, il, e}, x.up);
      fn({K::kExpDown, il, e}, x.down);
    }
}

size_t Model::weight_bytes() const {
  size_t total = 0;
  for_each_weight([&](const WeightId&, const MatView& v) {
    total += static_cast<size_t>(v.n_out) * dtype_row_bytes(v.dtype, v.n_in);
  });
  return total;
}

const float* model_own_floats(Model& m, const std::vector<float>& values) {
  auto buf = std::make_shared<Buffer>(values.size() * sizeof(float));
  std::memcpy(buf->data(), values.data(), values.size() * sizeof(float));
  m.buffers.push_back(buf);
  return reinterpret_cast<const float*>(buf->data());
}

}  // namespace rme
