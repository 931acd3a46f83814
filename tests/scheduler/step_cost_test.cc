// tests/scheduler: the step cost model (online fit, calibration) and the expert policy using it.
#include "scheduler/step_cost.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "scheduler/schedule.h"

namespace rme {
namespace {

TEST(StepCostTest, FollowsTheMeasuredStepsOfAMachineItsPriorGotWrong) {
  StepCostParams truth;
  truth.fixed = 0.030;
  truth.per_token = 0.012;
  truth.per_expert = 0.010;
  truth.per_ctx = 2e-7;
  StepCostParams prior = truth;  // calibration off by 2-3x in every part
  prior.fixed *= 0.4;
  prior.per_token *= 2.5;
  prior.per_expert *= 3;
  prior.per_ctx *= 0.5;
  StepCostModel model(prior);
  std::mt19937 rng(7);
  std::normal_distribution<double> noise(1.0, 0.05);
  StepShape probe{24, 4, 0, 24 * 300};
  const double before = std::abs(model.predict(probe) / truth.predict(probe) - 1);
  for (int i = 0; i < 400; ++i) {
    StepShape s;
    s.n_tokens = 1 + static_cast<int>(rng() % 64);
    s.n_experts = 1 + static_cast<int>(rng() % 7);
    s.ctx_tokens = s.n_tokens * static_cast<int64_t>(rng() % 500);
    model.observe(s, truth.predict(s) * noise(rng));
  }
  EXPECT_EQ(model.observed(), 400);
  const double after = std::abs(model.predict(probe) / truth.predict(probe) - 1);
  EXPECT_GT(before, 0.3);
  EXPECT_LT(after, 0.08);
  EXPECT_NEAR(model.params().per_token, truth.per_token, 0.15 * truth.per_token);
  EXPECT_NEAR(model.params().per_expert, truth.per_expert, 0.3 * truth.per_expert);
  // Garbage is ignored; parameters never go negative.
  model.observe(probe, -1.0);
  model.observe(probe, std::nan(""));
  model.observe(StepShape{}, 1.0);
  EXPECT_EQ(model.observed(), 400);
  for (int i = 0; i < 50; ++i) model.observe(StepShape{1, 1, 0, 0}, 1e-6);
  const StepCostParams& p = model.params();
  for (double v : {p.fixed, p.per_token, p.per_expert, p.per_load, p.per_ctx}) EXPECT_GE(v, 0.0);
}

TEST(StepCostTest, CalibrationSplitsComputeFromWeightBytes) {
  // A machine reading weights at 20 GB/s and computing a token in 5 ms.
  const double B = 1 / 20e9, tok = 0.005, shared = 400e6, expert = 200e6;
  const double t_one = B * (shared + expert) + tok, t_big = B * (shared + 3 * expert) + 16 * tok;
  StepCostParams p = calibrate_step_cost(t_one, 1, t_big, 16, 3, shared, expert, 1e5, true);
  EXPECT_NEAR(p.per_token, tok, 1e-9);
  EXPECT_NEAR(p.fixed, B * shared, 1e-9);
  EXPECT_NEAR(p.per_expert, B * expert, 1e-9);
  EXPECT_NEAR(p.per_ctx, B * 1e5, 1e-12);
  EXPECT_GT(p.per_load, 0);
  EXPECT_EQ(calibrate_step_cost(t_one, 1, t_big, 16, 3, shared, expert, 1e5, false).per_load, 0);
  // Noise that makes the decode look cheaper than its bytes: the bytes get the fastest plausible
  // rate, the big step is still explained, nothing is negative.
  StepCostParams q = calibrate_step_cost(0.001, 1, 1.0, 16, 3, shared, expert, 1e5, false);
  EXPECT_GT(q.fixed, 0);
  EXPECT_GE(q.per_token, 0);
  EXPECT_NEAR(q.predict({16, 3, 0, 0}), 1.0, 1e-9);
}

SeqInfo decode(int64_t id, int expert) {
  SeqInfo s;
  s.id = s.arrival = id;
  s.n_known = 10;
  s.n_computed = 9;
  s.n_blocks = 1;
  s.pending_experts = {expert};
  return s;
}

std::vector<SeqInfo> mixed_decodes() {  // 8 decodes over 4 experts, expert 0 most common
  std::vector<SeqInfo> s;
  const int e[] = {0, 1, 0, 2, 0, 3, 1, 0};
  for (int i = 0; i < 8; ++i) s.push_back(decode(i, e[i]));
  return s;
}

TEST(StepCostTest, ExpertPolicyTakesEverythingWhenComputeDominates) {
  auto expert = make_policy("expert").value();
  auto fcfs = make_policy("fcfs").value();
  StepBudget b;
  b.free_blocks = 100;
  b.cost.fixed = 0.005;
  b.cost.per_token = 0.030;  // a CPU: a token's FLOPs cost more than an expert's bytes
  b.cost.per_expert = 0.002;
  const auto s = mixed_decodes();
  StepPlan p = expert->schedule(s, b, 0);
  EXPECT_EQ(p.n_tokens, fcfs->schedule(s, b, 0).n_tokens);
  EXPECT_EQ(p.n_tokens, 8);
  EXPECT_EQ(p.shape.n_experts, 4);
  EXPECT_EQ(p.shape.ctx_tokens, 8 * 10);
}

// Deferring a decode does not save its expert's read (it is read when the decode runs), so with
// every expert resident the policy takes everything even when expert bytes dominate a step.
TEST(StepCostTest, ExpertPolicyDefersNothingWhenEveryExpertIsResident) {
  auto expert = make_policy("expert").value();
  StepBudget b;
  b.free_blocks = 100;
  b.cost.fixed = 0.001;  // little besides the experts (a thin shared part)
  b.cost.per_token = 0.0005;
  b.cost.per_expert = 0.040;
  StepPlan p = expert->schedule(mixed_decodes(), b, 0);
  EXPECT_EQ(p.n_tokens, 8);
  EXPECT_EQ(p.experts, (std::vector<int>{0, 1, 2, 3}));
  // The explicit cap still groups: expert 0's four decodes.
  b.max_experts = 1;
  p = expert->schedule(mixed_decodes(), b, 0);
  EXPECT_EQ(p.n_tokens, 4);
  EXPECT_EQ(p.experts, std::vector<int>{0});
}

TEST(StepCostTest, ExpertPolicyServesResidentExpertsWhileMissesWouldCostALoad) {
  auto expert = make_policy("expert").value();
  StepBudget b;
  b.free_blocks = 100;
  b.expert_cache = true;
  b.resident_experts = {1, 2};
  b.cost.fixed = 0.030;
  b.cost.per_token = 0.020;
  b.cost.per_expert = 0.010;
  b.cost.per_load = 0.200;  // 200 MB from disk
  StepPlan p = expert->schedule(mixed_decodes(), b, 0);
  EXPECT_EQ(p.shape.n_loads, 0);
  EXPECT_EQ(p.n_tokens, 3);  // experts 1 (two decodes) and 2 (one)
  // Under the cache's slot cap too: 3 slots would let expert 0's four decodes in with a load.
  b.max_experts = 3;
  EXPECT_EQ(expert->schedule(mixed_decodes(), b, 0).experts, (std::vector<int>{1, 2}));
  // A cheap load (page cache) is worth taking now.
  b.cost.per_load = 0.001;
  EXPECT_EQ(expert->schedule(mixed_decodes(), b, 0).n_tokens, 7);
  b.cost.per_load = 0.200;
  // Every slot resident and wanted: the step leaves one free (dropping its smallest group) so
  // the waiting expert 0 loads meanwhile instead of stalling a later step.
  b.resident_experts = {1, 2, 3};
  EXPECT_EQ(expert->schedule(mixed_decodes(), b, 0).experts, (std::vector<int>{1, 2}));
  b.max_experts = 4;  // a slot to spare anyway: all three resident experts run
  EXPECT_EQ(expert->schedule(mixed_decodes(), b, 0).experts, (std::vector<int>{1, 2, 3}));
  b.resident_experts = {1, 2};
  b.max_experts = 0;
  // Prompts obey the same choice: a chunk stops before a token that would need a load.
  SeqInfo prompt;
  prompt.id = prompt.arrival = 9;
  prompt.n_known = 6;
  prompt.pending_experts = {1, 1, 2, 0, 0, 0};
  auto s = mixed_decodes();
  s.push_back(prompt);
  std::map<int64_t, int> got;
  for (const auto& c : expert->schedule(s, b, 0).chunks) got[c.id] = c.n_tokens;
  EXPECT_EQ(got.at(9), 3);
}

}  // namespace
}  // namespace rme
