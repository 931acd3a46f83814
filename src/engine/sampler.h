// engine: Sampler, the token sampling chain (logit bias, repetition / presence / frequency
// penalties, greedy or top-k -> temperature -> top-p -> min-p -> seeded draw), and
// log-probabilities.
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
  // OpenAI's penalties over the generated tokens (not the prompt): presence subtracts once from
  // every token already generated, frequency once per occurrence. In [-2, 2]; 0 disables.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::vector<std::pair<int, float>> logit_bias;  // (token, bias in [-100, 100]) added first
  uint64_t seed = 0;

  Status validate() const;
};

// Owns its RNG state and scratch; one per sequence; not thread-safe. Two samplers with the same
// params and seed produce the same tokens from the same logits.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Picks a token from logits[n_vocab]. history: tokens so far, of which the first n_prompt are
  // the prompt. On return logits hold the biased and penalized values the draw started from
  // (what log-probabilities are reported over).
  int sample(float* logits, int n_vocab, std::span<const int> history, size_t n_prompt = 0);

 private:
  void apply_penalties(float* logits, int n_vocab, std::span<const int> history, size_t n_prompt);
  double uniform();  // [0, 1), 53 bits, portable across standard libraries
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int>> cand_;
  std::vector<int> count_;  // per-token occurrences in the generated tokens (penalties only)
};

// The log-probability of token under logits[n_vocab] (log-softmax), and the n most likely tokens
// with theirs (most likely first, ties by id) in *top (cleared first; n may be 0).
float token_logprob(const float* logits, int n_vocab, int token, int n,
                    std::vector<std::pair<int, float>>* top);

}  // namespace rme
