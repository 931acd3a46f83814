// model: weight traversal.
#include "model/weights.h"

#include <algorithm>
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
    if (config.attn_bias) {
      fn({K::kBq, il}, MatView{DType::kF32, 1, config.q_dim(), l.bq});
      fn({K::kBk, il}, MatView{DType::kF32, 1, config.kv_dim(), l.bk});
      fn({K::kBv, il}, MatView{DType::kF32, 1, config.kv_dim(), l.bv});
    }
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

bool Model::interleaved() const {
  bool any = weights.output.layout != WeightLayout::kRows;
  for_each_weight(
      [&](const WeightId&, const MatView& v) { any |= v.layout != WeightLayout::kRows; });
  return any;
}

void Model::replace_storage(MatView& v, std::shared_ptr<Buffer> storage, const MatView& now) {
  const auto* old = static_cast<const uint8_t*>(v.data);
  const size_t bytes = dtype_row_bytes(v.dtype, v.n_in) * v.n_out;
  if (old != nullptr && old != weights.tok_embd.data) {
    for (const auto& f : files)
      if (old >= f->data() && old + bytes <= f->data() + f->size())
        f->release(static_cast<uint64_t>(old - f->data()), bytes);
    std::erase_if(buffers, [&](const std::shared_ptr<Buffer>& b) {
      return b->data() == old && b->size() == bytes;
    });
  }
  v = now;
  buffers.push_back(std::move(storage));
}

size_t Model::weight_bytes() const {
  size_t total = 0;
  for_each_weight([&](const WeightId&, const MatView& v) {
    total += static_cast<size_t>(v.n_out) * dtype_row_bytes(v.dtype, v.n_in);
  });
  return total;
}

size_t Model::decode_weight_bytes(int top_k) const {
  using K = WeightId::Kind;
  auto bytes = [](const MatView& v) {
    return static_cast<size_t>(v.n_out) * dtype_row_bytes(v.dtype, v.n_in);
  };
  const int k = top_k > 0 ? top_k : moe.top_k;
  double total = 0;
  for_each_weight([&](const WeightId& id, const MatView& v) {
    if (id.router) return;  // counted below
    if (id.kind == K::kTokEmbd) {
      total += dtype_row_bytes(v.dtype, v.n_in);  // one row is looked up
      if (config.tied_output) total += bytes(v);  // and the whole matrix projects the output
    } else if (id.kind == K::kExpGate || id.kind == K::kExpUp || id.kind == K::kExpDown) {
      total += static_cast<double>(bytes(v)) * k / moe.n_expert;
    } else if (id.kind != K::kLayerGate) {
      total += bytes(v);
    }
  });
  if (router) total += router->decode_weight_bytes();
  return static_cast<size_t>(total);
}

const float* model_own_floats(Model& m, const std::vector<float>& values) {
  auto buf = std::make_shared<Buffer>(values.size() * sizeof(float));
  std::memcpy(buf->data(), values.data(), values.size() * sizeof(float));
  m.buffers.push_back(buf);
  return reinterpret_cast<const float*>(buf->data());
}

}  // namespace rme
