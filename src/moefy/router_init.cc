// moefy: router shapes and random initialization.
#include "moefy/router_init.h"

#include <algorithm>

#include "model/random_model.h"

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
  auto m = std::make_shared<Model>(random_model(router_config(backbone, n_expert, shape),
                                                DType::kF32, seed, ThreadPool::global()));
  m->source = "random router";
  return m;
}

}  // namespace rme
