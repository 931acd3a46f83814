// scheduler: the step cost model's online correction (recursive least squares) and calibration.
#include "scheduler/step_cost.h"

#include <algorithm>
#include <cmath>

namespace rme {

namespace {
constexpr double kRelNoise = 0.1;  // a step's time is known to about 10% (a shared machine)
constexpr double kPriorRel = 0.5;  // the prior is trusted to about 50% per parameter
constexpr double kWindup = 4.0;    // forgetting never makes a parameter vaguer than 2x its prior
}  // namespace

StepCostModel::StepCostModel(const StepCostParams& prior, double forgetting) : lambda_(forgetting) {
  theta_ = {prior.fixed, prior.per_token, prior.per_expert, prior.per_load, prior.per_ctx};
  for (int i = 0; i < kN; ++i) {
    const double sd = kPriorRel * theta_[i];
    p_[i][i] = sd * sd;  // a parameter the prior sets to 0 stays 0 (the part does not exist)
  }
}

std::array<double, StepCostModel::kN> StepCostModel::features(const StepShape& s) const {
  return {1.0, static_cast<double>(s.n_tokens), static_cast<double>(s.n_experts),
          static_cast<double>(s.n_loads), static_cast<double>(s.ctx_tokens)};
}

void StepCostModel::observe(const StepShape& s, double seconds) {
  if (s.n_tokens <= 0 || !std::isfinite(seconds) || seconds <= 0) return;
  const std::array<double, kN> x = features(s);
  std::array<double, kN> px{};
  double xpx = 0, pred = 0;
  for (int i = 0; i < kN; ++i) {
    for (int j = 0; j < kN; ++j) px[i] += p_[i][j] * x[j];
    xpx += x[i] * px[i];
    pred += x[i] * theta_[i];
  }
  const double noise = kRelNoise * std::max(pred, seconds);
  const double denom = noise * noise + xpx;
  if (!(denom > 0)) return;
  const double err = seconds - pred;
  std::array<double, kN> theta = theta_;
  for (int i = 0; i < kN; ++i) theta[i] = std::max(0.0, theta[i] + px[i] / denom * err);
  for (int i = 0; i < kN; ++i)
    for (int j = 0; j < kN; ++j) p_[i][j] = (p_[i][j] - px[i] * px[j] / denom) / lambda_;
  // Anti-windup: steps that never vary a feature would let forgetting inflate its variance
  // without bound, and one odd step would then swing that parameter.
  for (int i = 0; i < kN; ++i) {
    const double sd0 = kPriorRel * std::max(theta[i], 1e-12);
    const double cap = kWindup * sd0 * sd0;
    if (p_[i][i] > cap) {
      const double f = std::sqrt(cap / p_[i][i]);
      for (int j = 0; j < kN; ++j) {
        p_[i][j] *= f;
        p_[j][i] *= f;
      }
    }
  }
  theta_ = theta;
  ++observed_;
}

StepCostParams calibrate_step_cost(double t_one, int experts_one, double t_big, int n_big,
                                   int experts_big, double shared_bytes, double expert_bytes,
                                   double kv_bytes_per_position, bool expert_cache) {
  // t = B * bytes + per_token * n, B = seconds per weight byte; two steps, two unknowns.
  const double a1 = shared_bytes + experts_one * expert_bytes;
  const double a2 = shared_bytes + experts_big * expert_bytes;
  const double n = std::max(1, n_big);
  const double floor_b = 1.0 / 200e9;  // no CPU reads weights faster than 200 GB/s
  double b = floor_b;
  if (n_big > 1 && a1 - a2 / n > 0) b = std::max(floor_b, (t_one - t_big / n) / (a1 - a2 / n));
  b = std::min(b, std::max(floor_b, t_one / std::max(a1, 1.0)));  // bytes cannot exceed the step
  StepCostParams p;
  p.fixed = b * shared_bytes;
  p.per_expert = b * expert_bytes;
  p.per_token = std::max(0.0, n_big > 1 ? (t_big - b * a2) / n : t_one - b * a1);
  p.per_ctx = b * kv_bytes_per_position;
  p.per_load = expert_cache ? expert_bytes / 1e9 : 0.0;  // ~1 GB/s disk until steps say otherwise
  return p;
}

}  // namespace rme
