// tests/util: the oracle — an independent Llama forward pass written with libtorch (float64),
// following Hugging Face's modeling_llama conventions (rotate_half RoPE, repeat_kv GQA).
#pragma once

#include <vector>

#include "tiny_model.h"

namespace rme::test {

// Logits [T, V] (row-major) for token ids run from position 0 with a causal mask.
std::vector<float> oracle_logits(const HfWeights& w, const std::vector<int>& ids);

}  // namespace rme::test
