// tests/util: libtorch reference forward. Kept in one TU because torch.h is slow to compile.
#include "torch_oracle.h"

#include <torch/torch.h>

#include <cmath>

namespace rme::test {
namespace {

torch::Tensor t2(const std::vector<float>& v, int64_t rows, int64_t cols) {
  return torch::from_blob(const_cast<float*>(v.data()), {rows, cols}, torch::kFloat32)
      .to(torch::kFloat64);
}
torch::Tensor t1(const std::vector<float>& v) {
  return torch::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())},
                          torch::kFloat32)
      .to(torch::kFloat64);
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * w;
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  auto half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return torch::cat({-x2, x1}, -1);
}

// HF's inv_freq, including the Llama-3 frequency rescaling.
torch::Tensor inv_freq(const LlamaConfig& c) {
  auto idx = torch::arange(0, c.head_dim, 2, torch::kFloat32);
  auto f = 1.0 / torch::pow(torch::tensor(c.rope_theta, torch::kFloat32),
                            idx / static_cast<float>(c.head_dim));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == RopeScaling::Type::kLlama3) {
    double low_wl = s.original_max_position / s.low_freq_factor;
    double high_wl = s.original_max_position / s.high_freq_factor;
    auto wavelen = 2 * M_PI / f;
    auto scaled = torch::where(wavelen > low_wl, f / s.factor, f);
    auto smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                  (s.high_freq_factor - s.low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
    auto medium = (wavelen >= high_wl) & (wavelen <= low_wl);
    f = torch::where(medium, smoothed, scaled);
  } else if (s.type == RopeScaling::Type::kLinear) {
    f = f / s.factor;
  }
  return f;  // float32 like HF
}

}  // namespace

std::vector<float> oracle_logits(const HfWeights& w, const std::vector<int>& ids) {
  torch::NoGradGuard ng;
  const LlamaConfig& c = w.config;
  const int64_t T = static_cast<int64_t>(ids.size()), D = c.n_embd, H = c.n_head, Hkv = c.n_head_kv,
                Dh = c.head_dim, V = c.n_vocab, F = c.n_ff;
  std::vector<int64_t> ids64(ids.begin(), ids.end());
  auto idx = torch::tensor(ids64, torch::kInt64);
  auto emb = t2(w.tok_embd, V, D);
  auto x = emb.index_select(0, idx);  // [T, D]
  // cos/sin [T, Dh]: float32 angles as HF computes them, then promoted.
  auto pos = torch::arange(T, torch::kFloat32);
  auto freqs = torch::outer(pos, inv_freq(c));
  auto e = torch::cat({freqs, freqs}, -1);
  auto cos = e.cos().to(torch::kFloat64).unsqueeze(1),
       sin = e.sin().to(torch::kFloat64).unsqueeze(1);
  auto mask = torch::full({T, T}, -INFINITY, torch::kFloat64).triu(1);
  if (c.sliding_window > 0)  // Mistral: key j is out of query i's window when j <= i - W
    mask = mask + torch::full({T, T}, -INFINITY, torch::kFloat64).tril(-c.sliding_window);
  for (int l = 0; l < c.n_layer; ++l) {
    const auto& L = w.layers[l];
    auto h = rms_norm(x, t1(L.attn_norm), c.rms_eps);
    auto q = h.matmul(t2(L.wq, H * Dh, D).t());
    auto k = h.matmul(t2(L.wk, Hkv * Dh, D).t());
    auto v = h.matmul(t2(L.wv, Hkv * Dh, D).t());
    if (c.attn_bias) {  // Qwen2: nn.Linear(bias=True) on q/k/v
      q = q + t1(L.bq);
      k = k + t1(L.bk);
      v = v + t1(L.bv);
    }
    q = q.view({T, H, Dh});
    k = k.view({T, Hkv, Dh});
    v = v.view({T, Hkv, Dh});
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    k = k.repeat_interleave(H / Hkv, 1);
    v = v.repeat_interleave(H / Hkv, 1);
    auto qh = q.permute({1, 0, 2}), kh = k.permute({1, 0, 2}),
         vh = v.permute({1, 0, 2});  // [H, T, Dh]
    auto att = qh.matmul(kh.transpose(1, 2)) / std::sqrt(static_cast<double>(Dh)) + mask;
    auto o = torch::softmax(att, -1).matmul(vh).permute({1, 0, 2}).reshape({T, H * Dh});
    x = x + o.matmul(t2(L.wo, D, H * Dh).t());
    auto h2 = rms_norm(x, t1(L.ffn_norm), c.rms_eps);
    auto g = h2.matmul(t2(L.gate, F, D).t());
    auto u = h2.matmul(t2(L.up, F, D).t());
    x = x + (torch::silu(g) * u).matmul(t2(L.down, D, F).t());
  }
  x = rms_norm(x, t1(w.out_norm), c.rms_eps);
  auto out_w = c.tied_output ? emb : t2(w.output, V, D);
  auto logits = x.matmul(out_w.t()).to(torch::kFloat32).contiguous();
  return std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + T * V);
}

}  // namespace rme::test
