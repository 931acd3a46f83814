// engine: Sampler, the token sampling chain (repetition penalty, greedy or top-k -> temperature
// -> top-p -> min-p -> seeded draw).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace rme {

struct SamplingParams {
  float temperature = 0.8f;     // <= 0 means greedy (argmax)
  int top_k = 40;               // <= 0 disables
  float top_p = 0.95f;          // >= 1 disables
  float min_p = 0.05f;          // <= 0 disables; keeps tokens with p >= min_p * p_max
  float repeat_penalty = 1.0f;  // 1 disables; divides positive logits / multiplies negative
  int repeat_last_n = 64;       // how many recent tokens the penalty looks at
  uint64_t seed = 0;

  Status validate() const;
};

// Owns its RNG state and scratch; one per sequence; not thread-safe. Two samplers with the same
// params and seed produce the same tokens from the same logits.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Picks a token from logits[n_vocab] (modified in place). history: tokens so far.
  int sample(float* logits, int n_vocab, std::span<const int> history);

 private:
  double uniform();  // [0, 1), 53 bits, portable across standard libraries
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int>> cand_;
};

}  // namespace rme
