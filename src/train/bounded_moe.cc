// train: BoundedMoe — 16-bit frozen storage, one trainable expert, layer-wise recomputation.
#include "train/bounded_moe.h"

#include <sys/mman.h>
#include <unistd.h>

#include <array>

#include "formats/convert_rows.h"
#include "train/moe_torch.h"

namespace rme {

namespace {

torch::Tensor f32(const torch::Tensor& t) { return t.to(torch::kFloat32); }

torch::Tensor vec(const float* p, int64_t n) {
  return torch::from_blob(const_cast<float*>(p), {n}, torch::kFloat32).clone();
}

// A view of a contiguous tensor for the writers.
MatView view(const torch::Tensor& t) {
  DType d = t.scalar_type() == torch::kFloat32 ? DType::kF32
            : t.scalar_type() == torch::kHalf  ? DType::kF16
                                               : DType::kBF16;
  RME_CHECK(t.is_contiguous() && t.dim() == 2);
  return MatView{d, t.size(0), t.size(1), t.numel() > 0 ? t.data_ptr() : nullptr};
}

}  // namespace

void BoundedMoe::release_pages(const torch::Tensor& t) const {
  // Pages of a mapped matrix that is being replaced would stay resident (and counted) until the
  // kernel needed the memory: give them back now. Only whole pages inside the matrix.
  const auto* b = static_cast<const uint8_t*>(t.data_ptr());
  const uint8_t* e = b + t.nbytes();
  for (const auto& f : files_) {
    if (b < f->data() || e > f->data() + f->size()) continue;
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(b) + page - 1) / page * page;
    const uintptr_t hi = reinterpret_cast<uintptr_t>(e) / page * page;
    if (hi > lo) (void)madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
    return;
  }
}

BoundedMoe::BoundedMoe(const Model& m, torch::ScalarType storage)
    : config_(torch_config(m.config)), n_expert_(m.moe.n_expert), storage_(storage) {
  RME_CHECK(storage == torch::kHalf || storage == torch::kBFloat16);
  torch::NoGradGuard ng;
  const LlamaConfig& c = config_;
  const auto q_order = rope_row_order(c.n_head, c.head_dim, m.config.rope_style, RopeStyle::kHalf);
  const auto k_order =
      rope_row_order(c.n_head_kv, c.head_dim, m.config.rope_style, RopeStyle::kHalf);
  // A matrix already in the storage type (and row order) is used where it lies, in the mapping:
  // nothing is copied, and the kernel may drop its pages under pressure (a 7B MoE does not fit
  // in memory). Others go through f32 one matrix at a time into a 16-bit copy.
  const DType want = storage == torch::kHalf ? DType::kF16 : DType::kBF16;
  auto low = [&](const MatView& v, const std::vector<int64_t>& order = {}) {
    bool identity = true;
    for (size_t i = 0; i < order.size(); ++i) identity = identity && order[i] == int64_t(i);
    if (v.dtype == want && identity && v.n_out > 0)
      return torch::from_blob(const_cast<void*>(v.data), {v.n_out, v.n_in}, storage_);
    return tensor_from(v, order).to(storage_);
  };
  files_ = m.files;
  buffers_ = m.buffers;
  const ModelWeights& w = m.weights;
  tok_embd_ = low(w.tok_embd);
  if (!c.tied_output) output_ = low(w.output);
  out_norm_ = vec(w.out_norm, c.n_embd);
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& s = w.layers[l];
    Layer L;
    L.attn.attn_norm = vec(s.attn_norm, c.n_embd);
    L.attn.ffn_norm = vec(s.ffn_norm, c.n_embd);
    L.attn.wq = low(s.wq, q_order);
    L.attn.wk = low(s.wk, k_order);
    L.attn.wv = low(s.wv);
    L.attn.wo = low(s.wo);
    if (s.bq) {
      auto ordered = [](torch::Tensor b, const std::vector<int64_t>& order) {
        return order.empty() ? b : b.index_select(0, torch::tensor(order, torch::kInt64));
      };
      L.attn.bq = ordered(vec(s.bq, c.q_dim()), q_order);
      L.attn.bk = ordered(vec(s.bk, c.kv_dim()), k_order);
      L.attn.bv = vec(s.bv, c.kv_dim());
    }
    const int64_t D = c.n_embd;
    auto shared = [&](const MatView& v, std::vector<int64_t> empty_shape) {
      return (v.n_out > 0 ? tensor_from(v) : torch::empty(empty_shape)).requires_grad_();
    };
    L.gate = shared(s.w_gate, {0, D});
    L.up = shared(s.w_up, {0, D});
    L.down = shared(s.w_down, {D, 0});
    for (const ExpertWeights& x : s.experts)
      L.experts.push_back(
          {x.gate.n_out ? low(x.gate) : torch::empty({0, D}, storage_),
           x.up.n_out ? low(x.up) : torch::empty({0, D}, storage_),
           x.down.n_out ? low(x.down).contiguous() : torch::empty({D, 0}, storage_)});
    if (s.layer_gate.n_out > 0) L.layer_gate = tensor_from(s.layer_gate);
    layers_.push_back(std::move(L));
  }
  auto [cos, sin] = rope_tables(c);
  cos_ = cos;
  sin_ = sin;
}

void BoundedMoe::select(int e, int first, int last) {
  if (last < 0) last = config_.n_layer;
  RME_CHECK(e >= -1 && e < n_expert_ && first >= 0 && first <= last && last <= config_.n_layer);
  torch::NoGradGuard ng;
  for (int l = 0; l < config_.n_layer; ++l) {
    Layer& L = layers_[l];
    if (L.tgate.defined()) {  // new tensors: the old ones may be read-only mapped pages
      Expert& x = L.experts[selected_];
      for (const auto* t : {&x.gate, &x.up, &x.down}) release_pages(*t);
      x.gate = L.tgate.detach().to(storage_);
      x.up = L.tup.detach().to(storage_);
      x.down = L.tdown.detach().to(storage_);
      tuned_.insert({selected_, l});
    }
    L.tgate = L.tup = L.tdown = torch::Tensor();
    // The shared experts train with the selection's layers only: at 7B (3 domains) they are
    // 2.8 GB in f32, 11 GB with gradients and AdamW, more than any one routed expert's group.
    // Stale gradients of an earlier group go (zero_grad keeps them allocated).
    const bool shared = e < 0 || (l >= first && l < last);
    for (torch::Tensor* t : {&L.gate, &L.up, &L.down}) {
      t->mutable_grad() = torch::Tensor();
      t->requires_grad_(shared);
    }
    if (e >= 0 && l >= first && l < last) {
      const Expert& x = L.experts[e];
      L.tgate = f32(x.gate).requires_grad_();
      L.tup = f32(x.up).requires_grad_();
      L.tdown = f32(x.down).requires_grad_();
    }
  }
  selected_ = e;
  first_ = e >= 0 ? first : 0;
  last_ = e >= 0 ? last : 0;
}

std::vector<torch::Tensor> BoundedMoe::parameters() const {
  std::vector<torch::Tensor> p;
  for (const Layer& L : layers_)
    for (const auto& t : {L.gate, L.up, L.down})
      if (t.numel() > 0 && t.requires_grad()) p.push_back(t);
  for (const Layer& L : layers_)
    for (const auto& t : {L.tgate, L.tup, L.tdown})
      if (t.defined() && t.numel() > 0) p.push_back(t);
  return p;
}

torch::Tensor BoundedMoe::layer_forward(int l, const torch::Tensor& x, const torch::Tensor& route,
                                        const torch::Tensor& cos, const torch::Tensor& sin,
                                        const torch::Tensor& mask, torch::Tensor* share) const {
  const Layer& L = layers_[l];
  LlamaTorchImpl::Layer a = L.attn;  // f32 copies of this layer's frozen matrices, for now only
  a.wq = f32(a.wq);
  a.wk = f32(a.wk);
  a.wv = f32(a.wv);
  a.wo = f32(a.wo);
  auto h = attention_residual(config_, a, x, cos, sin, mask);
  auto h2 = rms_norm(h, L.attn.ffn_norm, config_.rms_eps);
  torch::Tensor shared_act;
  if (L.gate.size(0) > 0) {
    shared_act = torch::silu(torch::matmul(h2, L.gate.t())) * torch::matmul(h2, L.up.t());
    h = h + torch::matmul(shared_act, L.down.t());
  }
  auto weights = [&](int e) -> std::array<torch::Tensor, 3> {
    if (e == selected_ && L.tgate.defined()) return {L.tgate, L.tup, L.tdown};
    const Expert& x = L.experts[e];
    return {f32(x.gate), f32(x.up), f32(x.down)};
  };
  if (!share) return h + routed_experts(h2, route, n_expert_, weights);
  // Every expert's activations on every token (for its mass); the output still takes only the
  // routed ones, so the hidden states are those the MoE computes.
  const int64_t D = h2.size(-1);
  auto x2 = h2.reshape({-1, D});
  auto r = route.reshape({-1, n_expert_});
  auto mass = torch::zeros({x2.size(0), n_expert_});
  auto y = torch::zeros_like(x2);
  for (int e = 0; e < n_expert_; ++e) {
    const auto [g, u, d] = weights(e);
    if (g.size(0) == 0) continue;
    auto act = torch::silu(torch::matmul(x2, g.t())) * torch::matmul(x2, u.t());  // [N, W]
    mass.select(1, e).copy_(act.abs().sum(1));
    auto we = r.select(1, e);
    auto idx = we.nonzero().squeeze(1);
    if (idx.numel() > 0)
      y.index_add_(
          0, idx,
          torch::matmul(act.index_select(0, idx), d.t()) * we.index_select(0, idx).unsqueeze(1));
  }
  auto total = mass.sum(1, true);
  if (shared_act.defined()) total = total + shared_act.abs().sum(-1).reshape({-1, 1});
  *share = (mass / total.clamp_min(1e-20)).view({h2.size(0), h2.size(1), n_expert_});
  return h + y.view(h2.sizes());
}

torch::Tensor BoundedMoe::head(const torch::Tensor& x) const {
  auto h = rms_norm(x, out_norm_, config_.rms_eps);
  return torch::matmul(h, f32(output_.defined() ? output_ : tok_embd_).t());
}

double BoundedMoe::loss(const torch::Tensor& ids, const torch::Tensor& route, bool backward) {
  const int64_t B = ids.size(0), T = ids.size(1) - 1, Dh = config_.head_dim;
  TORCH_CHECK(T >= 1 && T <= config_.n_ctx, "sequence of ", T, " tokens");
  auto in = ids.narrow(1, 0, T), target = ids.narrow(1, 1, T).reshape({-1});
  auto cos = cos_.narrow(0, 0, T).view({1, 1, T, Dh}),
       sin = sin_.narrow(0, 0, T).view({1, 1, T, Dh});
  auto mask = attention_mask(config_, T);
  std::vector<torch::Tensor> inputs;  // each layer's input, the only activations kept
  torch::Tensor x;
  {
    torch::NoGradGuard ng;
    x = f32(tok_embd_.index_select(0, in.reshape({-1}))).view({B, T, config_.n_embd});
    for (int l = 0; l < config_.n_layer; ++l) {
      inputs.push_back(x);
      x = layer_forward(l, x, route, cos, sin, mask);
    }
  }
  if (!backward) {
    torch::NoGradGuard ng;
    return torch::nn::functional::cross_entropy(head(x).reshape({B * T, -1}), target)
        .item<double>();
  }
  auto top = x.requires_grad_();
  auto loss = torch::nn::functional::cross_entropy(head(top).reshape({B * T, -1}), target);
  loss.backward();
  torch::Tensor grad = top.grad();
  // Below the lowest layer with something trainable no gradient is wanted: a group of layers
  // recomputes and back-propagates only down to its first layer.
  int lowest = config_.n_layer;
  for (int l = 0; l < config_.n_layer && lowest == config_.n_layer; ++l) {
    const Layer& L = layers_[l];
    for (const auto& t : {L.gate, L.up, L.down, L.tgate})
      if (t.defined() && t.numel() > 0 && t.requires_grad()) lowest = l;
  }
  for (int l = config_.n_layer - 1; l >= lowest; --l) {
    auto xin = inputs[l].requires_grad_(l > lowest);  // nothing trainable below
    auto y = layer_forward(l, xin, route, cos, sin, mask);
    y.backward(grad);
    grad = l > lowest ? xin.grad() : torch::Tensor();
    inputs[l] = torch::Tensor();  // this layer's recomputed activations go with it
  }
  return loss.item<double>();
}

torch::Tensor BoundedMoe::expert_scores(const torch::Tensor& ids,
                                        const torch::Tensor& route) const {
  torch::NoGradGuard ng;
  const int64_t B = ids.size(0), T = ids.size(1), Dh = config_.head_dim;
  TORCH_CHECK(T >= 1 && T <= config_.n_ctx, "sequence of ", T, " tokens");
  auto cos = cos_.narrow(0, 0, T).view({1, 1, T, Dh}),
       sin = sin_.narrow(0, 0, T).view({1, 1, T, Dh});
  auto mask = attention_mask(config_, T);
  auto x = f32(tok_embd_.index_select(0, ids.reshape({-1}))).view({B, T, config_.n_embd});
  auto score = torch::zeros({B, T, n_expert_});
  for (int l = 0; l < config_.n_layer; ++l) {
    torch::Tensor share;
    x = layer_forward(l, x, route, cos, sin, mask, &share);
    score += share / config_.n_layer;
  }
  return score;
}

void BoundedMoe::save(torch::serialize::OutputArchive& a) const {
  a.write("selected", torch::tensor({int64_t{selected_}, int64_t{first_}, int64_t{last_}}));
  std::vector<int64_t> tuned;
  for (auto [e, l] : tuned_) tuned.insert(tuned.end(), {e, l});
  a.write("tuned", torch::tensor(tuned, torch::kInt64));
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    const std::string p = "layer" + std::to_string(l) + "_";
    a.write(p + "gate", L.gate.detach());
    a.write(p + "up", L.up.detach());
    a.write(p + "down", L.down.detach());
    if (L.tgate.defined()) {
      a.write(p + "tgate", L.tgate.detach());
      a.write(p + "tup", L.tup.detach());
      a.write(p + "tdown", L.tdown.detach());
    }
  }
  for (auto [e, l] : tuned_) {
    const std::string q = "layer" + std::to_string(l) + "_expert" + std::to_string(e) + "_";
    const Expert& x = layers_[l].experts[e];
    a.write(q + "gate", x.gate);
    a.write(q + "up", x.up);
    a.write(q + "down", x.down);
  }
}

void BoundedMoe::load(torch::serialize::InputArchive& a) {
  torch::NoGradGuard ng;
  torch::Tensor sel, tuned;
  a.read("selected", sel);
  a.read("tuned", tuned);
  select(-1);
  tuned_.clear();
  for (int64_t i = 0; i + 1 < tuned.numel(); i += 2)
    tuned_.insert({static_cast<int>(tuned[i].item<int64_t>()),
                   static_cast<int>(tuned[i + 1].item<int64_t>())});
  // read() into a defined tensor would re-seat its storage: every read gets a fresh one.
  auto read = [&](const std::string& name) {
    torch::Tensor t;
    a.read(name, t);
    return t;
  };
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = layers_[l];
    const std::string p = "layer" + std::to_string(l) + "_";
    L.gate.copy_(read(p + "gate"));
    L.up.copy_(read(p + "up"));
    L.down.copy_(read(p + "down"));
  }
  for (auto [e, l] : tuned_) {
    const std::string q = "layer" + std::to_string(l) + "_expert" + std::to_string(e) + "_";
    Expert& x = layers_[l].experts[e];
    x.gate = read(q + "gate").to(storage_).contiguous();
    x.up = read(q + "up").to(storage_).contiguous();
    x.down = read(q + "down").to(storage_).contiguous();
  }
  const int s = static_cast<int>(sel[0].item<int64_t>());
  select(s, static_cast<int>(sel[1].item<int64_t>()), static_cast<int>(sel[2].item<int64_t>()));
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = layers_[l];
    if (!L.tgate.defined()) continue;
    const std::string p = "layer" + std::to_string(l) + "_";
    L.tgate.copy_(read(p + "tgate"));
    L.tup.copy_(read(p + "tup"));
    L.tdown.copy_(read(p + "tdown"));
  }
}

Model BoundedMoe::view_model(const Model& shell) {
  select(-1);
  Model out;
  out.config = shell.config;
  out.config.rope_style = RopeStyle::kHalf;
  out.moe = shell.moe;
  out.source = shell.source;
  out.format = shell.format;
  out.router = shell.router;
  ModelWeights& w = out.weights;
  w.tok_embd = view(tok_embd_);
  w.output = output_.defined() ? view(output_) : w.tok_embd;
  w.out_norm = out_norm_.data_ptr<float>();
  for (Layer& L : layers_) {
    LayerWeights lw;
    lw.attn_norm = L.attn.attn_norm.data_ptr<float>();
    lw.ffn_norm = L.attn.ffn_norm.data_ptr<float>();
    lw.wq = view(L.attn.wq);
    lw.wk = view(L.attn.wk);
    lw.wv = view(L.attn.wv);
    lw.wo = view(L.attn.wo);
    if (L.attn.bq.defined()) {
      lw.bq = L.attn.bq.data_ptr<float>();
      lw.bk = L.attn.bk.data_ptr<float>();
      lw.bv = L.attn.bv.data_ptr<float>();
    }
    lw.w_gate = view(L.gate.detach());
    lw.w_up = view(L.up.detach());
    lw.w_down = view(L.down.detach());
    for (const Expert& x : L.experts)
      lw.experts.push_back({view(x.gate), view(x.up), view(x.down)});
    if (L.layer_gate.defined()) lw.layer_gate = view(L.layer_gate);
    w.layers.push_back(std::move(lw));
  }
  return out;
}

int64_t BoundedMoe::storage_bytes() const {
  int64_t n = tok_embd_.nbytes() + (output_.defined() ? output_.nbytes() : 0);
  for (const Layer& L : layers_) {
    for (const auto& t : {L.attn.wq, L.attn.wk, L.attn.wv, L.attn.wo, L.gate, L.up, L.down})
      n += t.nbytes();
    for (const Expert& x : L.experts) n += x.gate.nbytes() + x.up.nbytes() + x.down.nbytes();
  }
  for (const Layer& L : layers_)
    for (const auto& t : {L.tgate, L.tup, L.tdown})
      if (t.defined()) n += t.nbytes();
  return n;
}

int64_t BoundedMoe::expert_train_bytes(int e, int l) const {
  const Expert& x = layers_[l].experts[e];
  return 16 * (x.gate.numel() + x.up.numel() + x.down.numel());
}

int64_t BoundedMoe::shared_train_bytes() const {
  int64_t n = 0;
  for (const Layer& L : layers_) n += 16 * (L.gate.numel() + L.up.numel() + L.down.numel());
  return n;
}

int64_t BoundedMoe::trainable_bytes() const {
  int64_t n = 0;
  for (const auto& t : parameters()) n += t.nbytes();
  return n;
}

}  // namespace rme
