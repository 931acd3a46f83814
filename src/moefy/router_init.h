// moefy: the pre-gating router's default shape and a randomly initialized router (for tests and
// timing models; `rme train-router` trains the real one).
#pragma once

#include <cstdint>
#include <memory>

#include "model/weights.h"

namespace rme {

struct RouterShape {
  int n_embd = 0, n_layer = 1, n_head = 4, n_ff = 0, n_ctx = 0;
};

// The paper's router (1 layer, 4 heads, width 512) scaled down for small backbones:
// width = clamp(backbone n_embd / 2, 64, 512) rounded to a multiple of 4*8, n_ff = 2 * width.
RouterShape default_router_shape(const LlamaConfig& backbone);

// The router's LlamaConfig: the backbone's vocabulary in, n_expert logits out, untied.
LlamaConfig router_config(const LlamaConfig& backbone, int n_expert, const RouterShape& shape);

// A router with N(0, 0.02) weights (f32, owned by the returned Model).
std::shared_ptr<Model> random_router(const LlamaConfig& backbone, int n_expert,
                                     const RouterShape& shape, uint64_t seed);

}  // namespace rme
