// engine: sampling chain implementation.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace rme {

Status SamplingParams::validate() const {
  if (!(temperature >= 0) || temperature > 100)
    return invalid_argument("temperature must be in [0, 100]");
  if (!(top_p > 0) || top_p > 1) return invalid_argument("top_p must be in (0, 1]");
  if (!(min_p >= 0) || min_p > 1) return invalid_argument("min_p must be in [0, 1]");
  if (!(repeat_penalty > 0) || repeat_penalty > 100)
    return invalid_argument("repeat_penalty must be in (0, 100]");
  if (repeat_last_n < 0) return invalid_argument("repeat_last_n must be >= 0");
  if (!(presence_penalty >= -2) || presence_penalty > 2)
    return invalid_argument("presence_penalty must be in [-2, 2]");
  if (!(frequency_penalty >= -2) || frequency_penalty > 2)
    return invalid_argument("frequency_penalty must be in [-2, 2]");
  for (const auto& [id, bias] : logit_bias)
    if (id < 0 || !(bias >= -100) || bias > 100)
      return invalid_argument("logit_bias: token ids must be >= 0 and biases in [-100, 100]");
  return Status::Ok();
}

Sampler::Sampler(const SamplingParams& params) : p_(params), rng_(params.seed) {}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

void Sampler::apply_penalties(float* logits, int n_vocab, std::span<const int> history,
                              size_t n_prompt) {
  for (const auto& [id, bias] : p_.logit_bias)
    if (id < n_vocab) logits[id] += bias;
  if (p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f) {
    if (count_.size() < static_cast<size_t>(n_vocab)) count_.assign(n_vocab, 0);
    const std::span<const int> gen = history.subspan(std::min(n_prompt, history.size()));
    for (int t : gen)
      if (t >= 0 && t < n_vocab) ++count_[t];
    for (int t : gen) {
      if (t < 0 || t >= n_vocab || count_[t] == 0) continue;
      logits[t] -= p_.presence_penalty + p_.frequency_penalty * static_cast<float>(count_[t]);
      count_[t] = 0;  // each distinct token once
    }
  }
}

int Sampler::sample(float* logits, int n_vocab, std::span<const int> history, size_t n_prompt) {
  apply_penalties(logits, n_vocab, history, n_prompt);
  if (p_.repeat_penalty != 1.0f && p_.repeat_last_n > 0) {
    std::unordered_set<int> seen;
    size_t from = history.size() > static_cast<size_t>(p_.repeat_last_n)
                      ? history.size() - p_.repeat_last_n
                      : 0;
    for (size_t i = from; i < history.size(); ++i) {
      int t = history[i];
      if (t < 0 || t >= n_vocab || !seen.insert(t).second) continue;
      logits[t] = logits[t] > 0 ? logits[t] / p_.repeat_penalty : logits[t] * p_.repeat_penalty;
    }
  }
  if (p_.temperature <= 0) {
    return static_cast<int>(std::max_element(logits, logits + n_vocab) - logits);  // first max
  }
  cand_.clear();
  for (int i = 0; i < n_vocab; ++i) cand_.emplace_back(logits[i], i);
  // Sort by logit, ties by id, so the chain is deterministic.
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  size_t k = cand_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < k) {
    k = static_cast<size_t>(p_.top_k);
    std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), by_logit);
    cand_.resize(k);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // Softmax with temperature (in place: first becomes probability).
  const float mx = cand_[0].first;
  double sum = 0;
  for (auto& c : cand_) {
    c.first = std::exp((c.first - mx) / p_.temperature);
    sum += c.first;
  }
  for (auto& c : cand_) c.first = static_cast<float>(c.first / sum);
  if (p_.top_p < 1.0f) {
    double cum = 0;
    size_t keep = cand_.size();
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += cand_[i].first;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    cand_.resize(keep);
  }
  if (p_.min_p > 0) {
    const float floor = p_.min_p * cand_[0].first;
    size_t keep = 1;
    while (keep < cand_.size() && cand_[keep].first >= floor) ++keep;
    cand_.resize(keep);
  }
  double total = 0;
  for (auto& c : cand_) total += c.first;
  double r = uniform() * total;
  for (auto& c : cand_) {
    r -= c.first;
    if (r < 0) return c.second;
  }
  return cand_.back().second;
}

float token_logprob(const float* logits, int n_vocab, int token, int n,
                    std::vector<std::pair<int, float>>* top) {
  float mx = logits[0];
  for (int i = 1; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  top->clear();
  n = std::min(n, n_vocab);
  if (n > 0) {
    // Selection of the n best (n <= 20): one pass, insertion into a short sorted list.
    auto better = [&](int a, int b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    };
    std::vector<int> best;
    best.reserve(n + 1);
    for (int i = 0; i < n_vocab; ++i) {
      if (static_cast<int>(best.size()) == n && !better(i, best.back())) continue;
      best.insert(std::upper_bound(best.begin(), best.end(), i, better), i);
      if (static_cast<int>(best.size()) > n) best.pop_back();
    }
    for (int i : best) top->emplace_back(i, static_cast<float>(logits[i] - lse));
  }
  return static_cast<float>(logits[token] - lse);
}

}  // namespace rme
