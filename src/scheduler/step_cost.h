// scheduler: the step cost model — a step's time predicted from its composition (tokens, distinct
// experts read, experts to load, attention context), calibrated at start-up, corrected online.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace rme {

// What a step is made of, as far as its time goes.
struct StepShape {
  int n_tokens = 0;        // tokens computed (decode + prefill)
  int n_experts = 0;       // distinct routed experts whose weights the step reads
  int n_loads = 0;         // of those, experts not resident in the expert cache (read from disk)
  int64_t ctx_tokens = 0;  // attention work: sum over the step's tokens of positions attended
};

// Seconds per unit of each part of a step. All zero = no model (the expert policy then groups
// by expert unconditionally).
struct StepCostParams {
  double fixed = 0;       // per step: weights every step reads (attention, shared FFN, head)
  double per_token = 0;   // compute per token
  double per_expert = 0;  // reading one resident routed expert's weights
  double per_load = 0;    // bringing a non-resident expert in (disk)
  double per_ctx = 0;     // attention per (token x attended position)
  bool enabled() const { return fixed + per_token + per_expert + per_load + per_ctx > 0; }
  double predict(const StepShape& s) const {
    return fixed + per_token * s.n_tokens + per_expert * s.n_experts + per_load * s.n_loads +
           per_ctx * static_cast<double>(s.ctx_tokens);
  }
};

// Keeps StepCostParams close to measured steps: recursive least squares with forgetting (recent
// steps weigh more, so a machine that slows down or a cache that warms up is followed), started
// from a prior whose uncertainty is relative to each parameter, and parameters kept >= 0.
// Thread-compatible (one serving thread owns it).
class StepCostModel {
 public:
  explicit StepCostModel(const StepCostParams& prior = {}, double forgetting = 0.98);
  StepCostParams params() const { return {theta_[0], theta_[1], theta_[2], theta_[3], theta_[4]}; }
  double predict(const StepShape& s) const { return params().predict(s); }
  // Feeds one measured step; ignores empty steps and times that are not finite and positive.
  void observe(const StepShape& s, double seconds);
  int64_t observed() const { return observed_; }

 private:
  static constexpr int kN = 5;
  std::array<double, kN> features(const StepShape& s) const;
  std::array<double, kN> theta_{};              // StepCostParams' fields in order
  std::array<std::array<double, kN>, kN> p_{};  // covariance of theta, up to the noise scale
  double lambda_;
  int64_t observed_ = 0;
};

// Start-up calibration from two measured steps of the model itself: one of `n_big` tokens
// (prefill) and one of a single token (decode), each reading `experts_*` routed experts. Splits
// what is not per-token compute between the always-read weights and one expert by their bytes.
// per_load: expert bytes over an assumed disk rate (corrected online from measured stalls).
StepCostParams calibrate_step_cost(double t_one, int experts_one, double t_big, int n_big,
                                   int experts_big, double shared_bytes, double expert_bytes,
                                   double kv_bytes_per_position, bool expert_cache);

}  // namespace rme
