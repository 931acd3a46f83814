// formats: the names each file format gives the weights of a Llama model (the only place in rme
// where tensor names are strings).
#pragma once

#include <string>
#include <vector>

#include "model/weights.h"

namespace rme {

enum class NameScheme { kGguf, kHf };

std::string tensor_name(const WeightId& id, NameScheme scheme);
// Every weight id of a model with n_layer layers, in file order (q/k/v biases with attn_bias).
std::vector<WeightId> all_weight_ids(int n_layer, bool include_output, bool attn_bias);
// Row-major shape the config implies for a weight.
std::vector<int64_t> expected_shape(const WeightId& id, const LlamaConfig& c);
// 1-D f32 weights (norms, biases): stored as [n] and bound as f32 whatever the file's dtype.
bool is_vector(const WeightId& id);

}  // namespace rme
