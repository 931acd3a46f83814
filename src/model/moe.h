// model: MoeConfig, the Read-ME expert layout of a refactored model, and the activation-mass
// score that defines which expert suits a token best.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace rme {

// Plain data. Expert e is the same index in every layer. Channel lists are indices into the dense
// parent's FFN (sorted ascending); they define the layout and are what oracle routing and router
// targets compare activations against. A dense model has n_expert == 0.
struct MoeConfig {
  int n_expert = 0;
  int top_k = 1;  // experts applied per token (outputs mixed by renormalized router weights)
  int parent_n_ff = 0;
  std::vector<std::string> expert_names;                       // [e], e.g. the calibration domain
  std::vector<std::vector<int>> shared_channels;               // [l][...] always-on channels
  std::vector<std::vector<std::vector<int>>> expert_channels;  // [e][l][...]
  std::string parent;           // where the dense parent came from (informational)
  bool has_layer_gate = false;  // per-layer linear gates (the layer-wise MoE baseline)

  bool is_moe() const { return n_expert > 0; }
  int expert_width(int e, int layer) const {
    return static_cast<int>(expert_channels[e][layer].size());
  }
  // Checks shapes against n_layer and parent_n_ff (indices in range, lists sorted, unique).
  Status validate(int n_layer) const;
};

// Adds, for each of n_tok tokens, layer `layer`'s score of every expert: the share of the token's
// total |down_proj input| mass (act [n_tok, F] over the parent's F channels) that lies in the
// expert's routed channels. scores is [n_tok, n_expert] and accumulates over calls; the argmax of
// the sum over layers is the oracle expert. Shared channels count for no expert.
void add_expert_mass(const MoeConfig& moe, int layer, const float* act, int n_tok, int64_t F,
                     float* scores);

}  // namespace rme
