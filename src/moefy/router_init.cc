// moefy: router shapes and random initialization.
#include "moefy/router_init.h"

#include <algorithm>
#include <random>

namespace rme {

RouterShape default_router_shape(const LlamaConfig& b) {
  RouterShape s;
  s.n_embd = std::clamp(b.n_embd / 2, 64, 512) / 32 * 32;
  s.n_ff = 2 * s.n_embd;
  s.n_ctx = b.n_ctx;
  return s;
}

LlamaConfig router_config(const LlamaConfig& b, int n_expert, const RouterShape& s) {
  LlamaConfig c;
  c.n_vocab = b.n_vocab;
  c.n_out = n_expert;
  c.n_embd = s.n_embd;
  c.n_layer = s.n_layer;
  c.n_head = s.n_head;
  c.n_head_kv = s.n_head;
  c.head_dim = s.n_head > 0 ? s.n_embd / s.n_head : 0;
  c.n_ff = s.n_ff;
  c.n_ctx = s.n_ctx > 0 ? s.n_ctx : b.n_ctx;
  c.rms_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope_style = b.rope_style;
  c.tied_output = false;
  return c;
}

std::shared_ptr<Model> random_router(const LlamaConfig& backbone, int n_expert,
                                     const RouterShape& shape, uint64_t seed) {
  auto m = std::make_shared<Model>();
  m->config = router_config(backbone, n_expert, shape);
  m->source = "random router";
  m->format = "memory";
  const LlamaConfig& c = m->config;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  auto mat = [&](int64_t rows, int64_t cols) {
    std::vector<float> v(static_cast<size_t>(rows * cols));
    for (float& x : v) x = nd(rng);
    return MatView{DType::kF32, rows, cols, model_own_floats(*m, v)};
  };
  auto ones = [&](int64_t n) { return model_own_floats(*m, std::vector<float>(n, 1.0f)); };
  const int64_t D = c.n_embd;
  m->weights.tok_embd = mat(c.n_vocab, D);
  for (int l = 0; l < c.n_layer; ++l) {
    LayerWeights L;
    L.attn_norm = ones(D);
    L.wq = mat(c.q_dim(), D);
    L.wk = mat(c.kv_dim(), D);
    L.wv = mat(c.kv_dim(), D);
    L.wo = mat(D, c.q_dim());
    L.ffn_norm = ones(D);
    L.w_gate = mat(c.n_ff, D);
    L.w_up = mat(c.n_ff, D);
    L.w_down = mat(D, c.n_ff);
    m->weights.layers.push_back(L);
  }
  m->weights.out_norm = ones(D);
  m->weights.output = mat(n_expert, D);
  return m;
}

}  // namespace rme
