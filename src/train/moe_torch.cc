// train: MoeExperts and routing helpers.
#include "train/moe_torch.h"

#include "train/export.h"

namespace rme {
MoeExpertsImpl::MoeExpertsImpl(const Model& m) : n_expert_(m.moe.n_expert) {
  const int64_t D = m.config.n_embd;
  for (int l = 0; l < m.config.n_layer; ++l) {
    std::vector<torch::Tensor> g, u, d;
    std::vector<int64_t> off = {0}, own;
    for (int e = 0; e < n_expert_; ++e) {
      const ExpertWeights& x = m.weights.layers[l].experts[e];
      const int64_t W = x.gate.n_out;
      g.push_back(W ? tensor_from(x.gate) : torch::empty({0, D}));
      u.push_back(W ? tensor_from(x.up) : torch::empty({0, D}));
      d.push_back(W ? tensor_from(x.down) : torch::empty({D, 0}));
      off.push_back(off.back() + W);
      own.insert(own.end(), W, e);
    }
    const std::string p = "layer" + std::to_string(l) + "_";
    gate.push_back(register_parameter(p + "exp_gate", torch::cat(g, 0)));
    up.push_back(register_parameter(p + "exp_up", torch::cat(u, 0)));
    down.push_back(register_parameter(p + "exp_down", torch::cat(d, 1)));
    owner.push_back(register_buffer(p + "owner", torch::tensor(own, torch::kInt64)));
    offset_.push_back(off);
  }
}

torch::Tensor MoeExpertsImpl::forward(int l, const torch::Tensor& h2, const torch::Tensor& route,
                                      torch::Tensor* mass) {
  if (mass) {  // every expert's activations are wanted: one dense pass over all channels
    auto act = torch::silu(torch::matmul(h2, gate[l].t())) * torch::matmul(h2, up[l].t());
    auto sizes = act.sizes().vec();  // [B, T, W]
    sizes.back() = n_expert_;
    *mass = torch::zeros(sizes, act.options()).index_add_(-1, owner[l], act.detach().abs());
    auto w = route.index_select(-1, owner[l]);  // [B, T, W]: each channel weighted by its expert
    return torch::matmul(act * w, down[l].t());
  }
  // Only routed (token, expert) pairs are computed: with 7 experts of which 1 or 2 are used, the
  // dense pass above would spend 3-7x the FLOPs, and training time, on zero-weighted channels.
  return routed_experts(h2, route, n_expert_, [&](int e) -> std::array<torch::Tensor, 3> {
    const int64_t b = offset_[l][e], W = offset_[l][e + 1] - b;
    return {gate[l].narrow(0, b, W), up[l].narrow(0, b, W), down[l].narrow(1, b, W)};
  });
}

torch::Tensor routed_experts(const torch::Tensor& h2, const torch::Tensor& route, int n_expert,
                             const std::function<std::array<torch::Tensor, 3>(int)>& expert) {
  const int64_t D = h2.size(-1);
  auto x = h2.reshape({-1, D});            // [N, D]
  auto r = route.reshape({-1, n_expert});  // [N, E]
  auto y = torch::zeros_like(x);
  for (int e = 0; e < n_expert; ++e) {
    auto we = r.select(1, e);
    auto idx = we.nonzero().squeeze(1);  // tokens routed to e
    if (idx.numel() == 0) continue;
    const auto [g, u, d] = expert(e);
    if (g.size(0) == 0) continue;
    auto xe = x.index_select(0, idx);                                             // [n, D]
    auto act = torch::silu(torch::matmul(xe, g.t())) * torch::matmul(xe, u.t());  // [n, W]
    auto ye = torch::matmul(act, d.t()) * we.index_select(0, idx).unsqueeze(1);
    y = y.index_add(0, idx, ye);
  }
  return y.view(h2.sizes());
}

void MoeExpertsImpl::export_into(Model& m) const {
  for (size_t l = 0; l < gate.size(); ++l)
    for (int e = 0; e < n_expert_; ++e) {
      const int64_t b = offset_[l][e], W = offset_[l][e + 1] - b;
      ExpertWeights& x = m.weights.layers[l].experts[e];
      x.gate = own_matrix(m, gate[l].narrow(0, b, W));
      x.up = own_matrix(m, up[l].narrow(0, b, W));
      x.down = own_matrix(m, down[l].narrow(1, b, W));
    }
}

LlamaConfig torch_config(const LlamaConfig& c) {
  LlamaConfig t = c;
  t.rope_style = RopeStyle::kHalf;
  return t;
}

torch::Tensor route_weights(const torch::Tensor& logits, int k) {
  auto top = logits.topk(k, -1);
  auto w = k == 1 ? torch::ones_like(std::get<0>(top)) : torch::softmax(std::get<0>(top), -1);
  return torch::zeros_like(logits).scatter_(-1, std::get<1>(top), w);
}

std::vector<torch::Tensor> expert_masks(const MoeConfig& moe) {
  std::vector<torch::Tensor> out;
  const int L = moe.n_expert > 0 ? static_cast<int>(moe.expert_channels[0].size()) : 0;
  for (int l = 0; l < L; ++l) {
    auto m = torch::zeros({moe.parent_n_ff, moe.n_expert});
    for (int e = 0; e < moe.n_expert; ++e)
      for (int c : moe.expert_channels[e][l]) m[c][e] = 1.0f;
    out.push_back(m);
  }
  return out;
}

}  // namespace rme
