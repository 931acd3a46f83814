// train: LlamaTorch forward (same math as model/forward.cc, batched, with autograd).
#include "train/torch_llama.h"

#include <cmath>

#include "formats/convert_rows.h"
#include "tensor/quant.h"

namespace rme {

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * w;
}

namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

LlamaTorchImpl::LlamaTorchImpl(const LlamaConfig& c) : config_(c) {
  const int64_t D = c.n_embd, V = c.n_vocab, QD = c.q_dim(), KV = c.kv_dim();
  tok_embd = register_parameter("tok_embd", torch::empty({V, D}));
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "layer" + std::to_string(l) + "_";  // torch forbids dots in names
    const int64_t F = c.ffn_width(l);
    Layer L;
    L.attn_norm = register_parameter(p + "attn_norm", torch::ones({D}));
    L.wq = register_parameter(p + "wq", torch::empty({QD, D}));
    L.wk = register_parameter(p + "wk", torch::empty({KV, D}));
    L.wv = register_parameter(p + "wv", torch::empty({KV, D}));
    L.wo = register_parameter(p + "wo", torch::empty({D, QD}));
    if (c.attn_bias) {
      L.bq = register_parameter(p + "bq", torch::zeros({QD}));
      L.bk = register_parameter(p + "bk", torch::zeros({KV}));
      L.bv = register_parameter(p + "bv", torch::zeros({KV}));
    }
    L.ffn_norm = register_parameter(p + "ffn_norm", torch::ones({D}));
    L.gate = register_parameter(p + "gate", torch::empty({F, D}));
    L.up = register_parameter(p + "up", torch::empty({F, D}));
    L.down = register_parameter(p + "down", torch::empty({D, F}));
    layers.push_back(L);
  }
  out_norm = register_parameter("out_norm", torch::ones({D}));
  if (!c.tied_output) output = register_parameter("output", torch::empty({c.n_output(), D}));
  auto [cos, sin] = rope_tables(c);
  cos_ = register_buffer("rope_cos", cos);
  sin_ = register_buffer("rope_sin", sin);
  init_weights(0);
}

void LlamaTorchImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard ng;
  torch::manual_seed(seed);
  const double resid = 0.02 / std::sqrt(2.0 * config_.n_layer);
  tok_embd.normal_(0, 0.02);
  for (auto& L : layers) {
    for (auto* w : {&L.wq, &L.wk, &L.wv, &L.gate, &L.up}) w->normal_(0, 0.02);
    L.wo.normal_(0, resid);
    L.down.normal_(0, resid);
    L.attn_norm.fill_(1);
    L.ffn_norm.fill_(1);
    for (auto* b : {&L.bq, &L.bk, &L.bv})
      if (b->defined()) b->zero_();
  }
  out_norm.fill_(1);
  if (output.defined()) output.normal_(0, 0.02);
}

std::pair<torch::Tensor, torch::Tensor> rope_tables(const LlamaConfig& c) {
  // From the engine's own frequencies, so training and inference agree exactly.
  std::vector<float> inv = c.rope_inv_freq();
  auto inv_t =
      torch::from_blob(inv.data(), {static_cast<int64_t>(inv.size())}, torch::kFloat32).clone();
  auto freqs = torch::outer(torch::arange(c.n_ctx, torch::kFloat32), inv_t);
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos(), emb.sin()};
}

torch::Tensor attention_mask(const LlamaConfig& c, int64_t T) {
  auto mask = torch::full({T, T}, -INFINITY).triu(1);
  if (c.sliding_window > 0)  // Mistral: key j is out of query i's window when j <= i - W
    mask = mask + torch::full({T, T}, -INFINITY).tril(-c.sliding_window);
  return mask;
}

torch::Tensor attention_residual(const LlamaConfig& c, const LlamaTorchImpl::Layer& L,
                                 const torch::Tensor& x, const torch::Tensor& cos,
                                 const torch::Tensor& sin, const torch::Tensor& mask) {
  const int64_t B = x.size(0), T = x.size(1), H = c.n_head, Hkv = c.n_head_kv, Dh = c.head_dim;
  auto h = rms_norm(x, L.attn_norm, c.rms_eps);
  auto q = torch::matmul(h, L.wq.t()), k = torch::matmul(h, L.wk.t()),
       v = torch::matmul(h, L.wv.t());
  if (L.bq.defined()) {  // Qwen2's q/k/v biases, before RoPE
    q = q + L.bq;
    k = k + L.bk;
    v = v + L.bv;
  }
  q = q.view({B, T, H, Dh}).transpose(1, 2);    // [B, H, T, Dh]
  k = k.view({B, T, Hkv, Dh}).transpose(1, 2);  // [B, Hkv, T, Dh]
  v = v.view({B, T, Hkv, Dh}).transpose(1, 2);
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;
  if (Hkv != H) {
    k = k.repeat_interleave(H / Hkv, 1);
    v = v.repeat_interleave(H / Hkv, 1);
  }
  auto att = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(Dh)) + mask;
  auto o = torch::matmul(torch::softmax(att, -1), v).transpose(1, 2).reshape({B, T, H * Dh});
  return x + torch::matmul(o, L.wo.t());
}

torch::Tensor tensor_from(const MatView& v, const std::vector<int64_t>& row_order) {
  auto t = torch::empty({v.n_out, v.n_in}, torch::kFloat32);
  float* p = t.data_ptr<float>();
  const size_t row = dtype_row_bytes(v.dtype, v.n_in);
  for (int64_t r = 0; r < v.n_out; ++r) {
    const int64_t src = row_order.empty() ? r : row_order[r];
    dequantize_row(v.dtype, static_cast<const uint8_t*>(v.data) + src * row, p + r * v.n_in,
                   v.n_in);
  }
  return t;
}

namespace {

torch::Tensor vec(const float* p, int64_t n) {
  return torch::from_blob(const_cast<float*>(p), {n}, torch::kFloat32).clone();
}

}  // namespace

void LlamaTorchImpl::load_from(const Model& m) {
  const LlamaConfig& c = config_;
  TORCH_CHECK(m.config.n_layer == c.n_layer && m.config.n_embd == c.n_embd &&
                  m.config.n_vocab == c.n_vocab && m.config.n_output() == c.n_output(),
              "load_from: model shape differs");
  torch::NoGradGuard ng;
  const auto q_order = rope_row_order(c.n_head, c.head_dim, m.config.rope_style, RopeStyle::kHalf);
  const auto k_order =
      rope_row_order(c.n_head_kv, c.head_dim, m.config.rope_style, RopeStyle::kHalf);
  const ModelWeights& w = m.weights;
  tok_embd.copy_(tensor_from(w.tok_embd));
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& s = w.layers[l];
    Layer& L = layers[l];
    L.attn_norm.copy_(vec(s.attn_norm, c.n_embd));
    L.ffn_norm.copy_(vec(s.ffn_norm, c.n_embd));
    L.wq.copy_(tensor_from(s.wq, q_order));
    L.wk.copy_(tensor_from(s.wk, k_order));
    L.wv.copy_(tensor_from(s.wv));
    L.wo.copy_(tensor_from(s.wo));
    TORCH_CHECK(L.bq.defined() == (s.bq != nullptr), "load_from: q/k/v biases differ in layer ", l);
    if (s.bq) {  // a bias moves with its matrix's rows
      auto ordered = [](torch::Tensor b, const std::vector<int64_t>& order) {
        return order.empty() ? b : b.index_select(0, torch::tensor(order, torch::kInt64));
      };
      L.bq.copy_(ordered(vec(s.bq, c.q_dim()), q_order));
      L.bk.copy_(ordered(vec(s.bk, c.kv_dim()), k_order));
      L.bv.copy_(vec(s.bv, c.kv_dim()));
    }
    TORCH_CHECK(s.w_gate.n_out == L.gate.size(0), "load_from: FFN width differs in layer ", l);
    if (s.w_gate.n_out > 0) {
      L.gate.copy_(tensor_from(s.w_gate));
      L.up.copy_(tensor_from(s.w_up));
      L.down.copy_(tensor_from(s.w_down));
    }
  }
  out_norm.copy_(vec(w.out_norm, c.n_embd));
  if (output.defined()) output.copy_(tensor_from(w.output));
}

std::vector<torch::Tensor> LlamaTorchImpl::decay_params() const {
  std::vector<torch::Tensor> p = {tok_embd};
  for (const auto& L : layers)
    for (const auto& w : {L.wq, L.wk, L.wv, L.wo, L.gate, L.up, L.down}) p.push_back(w);
  if (output.defined()) p.push_back(output);
  return p;
}

std::vector<torch::Tensor> LlamaTorchImpl::no_decay_params() const {
  std::vector<torch::Tensor> p = {out_norm};
  for (const auto& L : layers) {
    p.push_back(L.attn_norm);
    p.push_back(L.ffn_norm);
    for (const auto& b : {L.bq, L.bk, L.bv})
      if (b.defined()) p.push_back(b);
  }
  return p;
}

torch::Tensor LlamaTorchImpl::forward(const torch::Tensor& ids, const FfnHook& hook) {
  const LlamaConfig& c = config_;
  const int64_t B = ids.size(0), T = ids.size(1), Dh = c.head_dim;
  TORCH_CHECK(T <= c.n_ctx, "sequence of ", T, " exceeds n_ctx ", c.n_ctx);
  auto x = tok_embd.index_select(0, ids.reshape({-1})).view({B, T, c.n_embd});
  auto cos = cos_.narrow(0, 0, T).view({1, 1, T, Dh}),
       sin = sin_.narrow(0, 0, T).view({1, 1, T, Dh});
  auto mask = attention_mask(c, T);
  for (const Layer& L : layers) {
    x = attention_residual(c, L, x, cos, sin, mask);
    auto h2 = rms_norm(x, L.ffn_norm, c.rms_eps);
    auto g = torch::matmul(h2, L.gate.t()), u = torch::matmul(h2, L.up.t());
    auto act = torch::silu(g) * u;  // [B, T, F]
    auto extra = hook ? hook(static_cast<int>(&L - layers.data()), h2, act) : torch::Tensor();
    x = x + torch::matmul(act, L.down.t());
    if (extra.defined()) x = x + extra;
  }
  x = rms_norm(x, out_norm, c.rms_eps);
  return torch::matmul(x, (output.defined() ? output : tok_embd).t());
}

}  // namespace rme
