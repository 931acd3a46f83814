// tests/scheduler: expert cache eviction rules, the offline optimum and trace replay.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "scheduler/cache_policy.h"
#include "scheduler/cache_sim.h"
#include "scheduler/expert_trace.h"

namespace rme {
namespace {

using namespace std::string_literals;

int64_t misses(Eviction p, const std::vector<int>& seq, int cap) {
  ExpertTrace t;
  t.n_expert = 8;
  for (int e : seq) t.steps.push_back({e});
  CacheSimResult r = simulate_cache(t, cap, p, static_cast<int>(seq.size()));
  return r.accesses - r.hits;
}

TEST(CacheTest, EvictionRulesOnAHandSequence) {
  // Capacity 2. a b a c b: LRU evicts b for c (a used later), then misses b: 4 misses.
  // LFU: a used twice, evicts b for c, misses b again: 4. Belady: evicts a for c (b comes
  // back, a does not): 3 misses — the optimum.
  const std::vector<int> s = {0, 1, 0, 2, 1};
  EXPECT_EQ(misses(Eviction::kLru, s, 2), 4);
  EXPECT_EQ(misses(Eviction::kLfu, s, 2), 4);
  EXPECT_EQ(misses(Eviction::kBelady, s, 2), 3);
  EXPECT_EQ(optimal_misses(s, 8, 2), 3);
  // LFU keeps the frequently used one where LRU does not: a a a b c a.
  const std::vector<int> f = {0, 0, 0, 1, 2, 0};
  EXPECT_EQ(misses(Eviction::kLru, f, 2), 4);
  EXPECT_EQ(misses(Eviction::kLfu, f, 2), 3);
}

TEST(CacheTest, BeladyWithFullLookaheadIsOptimalAndNeverWorseThanLru) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<int> s;
    int e = 0;
    for (int i = 0; i < 300; ++i) s.push_back(e = rng() % 3 == 0 ? static_cast<int>(rng() % 8) : e);
    for (int cap = 1; cap <= 8; ++cap) {
      const int64_t opt = optimal_misses(s, 8, cap);
      EXPECT_EQ(misses(Eviction::kBelady, s, cap), opt);
      EXPECT_GE(misses(Eviction::kLru, s, cap), opt);
      EXPECT_GE(misses(Eviction::kLfu, s, cap), opt);
    }
  }
}

TEST(CacheTest, MultiExpertStepsBeladyMatchesTheOptimumAndBeatsLru) {
  std::mt19937 rng(11);
  ExpertTrace t;
  t.n_expert = 8;
  int hot = 0;
  for (int s = 0; s < 400; ++s) {
    std::vector<int> step = {hot = rng() % 4 == 0 ? static_cast<int>(rng() % 8) : hot};
    if (rng() % 2) step.push_back(static_cast<int>(rng() % 8));
    std::sort(step.begin(), step.end());
    step.erase(std::unique(step.begin(), step.end()), step.end());
    t.steps.push_back(step);
  }
  for (int cap = 1; cap <= 8; ++cap) {
    const CacheSimResult opt = simulate_optimal(t, cap);
    EXPECT_EQ(simulate_cache(t, cap, Eviction::kBelady, 1 << 20).hits, opt.hits) << cap;
    const int64_t lru = simulate_cache(t, cap, Eviction::kLru, 0).hits;
    EXPECT_GE(simulate_cache(t, cap, Eviction::kBelady, 4).hits, lru) << cap;
    EXPECT_GE(opt.hits, lru);
  }
}

TEST(CacheTest, PinnedExpertsAreNotEvicted) {
  ExpertCacheState c(4, 2, Eviction::kLru);
  std::vector<int64_t> next(4, kNeverUsed);
  std::vector<char> pinned(4, 0);
  int ev;
  EXPECT_EQ(c.insert(0, 0, next, pinned, &ev), 0);
  EXPECT_EQ(c.insert(1, 1, next, pinned, &ev), 1);
  pinned[0] = pinned[1] = 1;
  EXPECT_EQ(c.insert(2, 2, next, pinned, &ev), -1);
  pinned[1] = 0;
  EXPECT_EQ(c.insert(2, 3, next, pinned, &ev), 1);
  EXPECT_EQ(ev, 1);
  EXPECT_TRUE(c.resident(0) && c.resident(2) && !c.resident(1));
}

TEST(CacheTest, ParsesStepAndRoutingTraces) {
  auto steps = parse_expert_trace("step,expert\n0,3\n0,1\n1,3\n", 1, 0);
  ASSERT_TRUE(steps.ok()) << steps.status().message();
  EXPECT_EQ(steps->n_expert, 4);
  EXPECT_EQ(steps->steps, (std::vector<std::vector<int>>{{1, 3}, {3}}));
  // Two sequences decoded together; the third takes the first one's place when it ends.
  auto routing = parse_expert_trace(
      "domain,seq,pos,token,expert\nx,0,0,5,1\nx,0,1,5,2\nx,1,0,5,0\nx,1,1,5,0\nx,1,2,5,0\n"
      "x,2,0,5,3\n",
      2, 0);
  ASSERT_TRUE(routing.ok()) << routing.status().message();
  EXPECT_EQ(routing->steps, (std::vector<std::vector<int>>{{0, 1}, {0, 2}, {0, 3}}));
  EXPECT_FALSE(parse_expert_trace("a,b\n1,2\n", 1, 0).ok());
  EXPECT_FALSE(parse_expert_trace("step,expert\n0,x\n", 1, 0).ok());
  EXPECT_FALSE(parse_expert_trace("step,expert\n0,9\n", 1, 4).ok());
  // Windows line endings read the same.
  auto crlf = parse_expert_trace("step,expert\r\n0,3\r\n0,1\r\n1,3\r\n", 1, 0);
  ASSERT_TRUE(crlf.ok()) << crlf.status().message();
  EXPECT_EQ(crlf->steps, steps->steps);
}

// The step trace a serving run writes reads back as the steps it ran (a dense step, with no
// routed experts, has no rows and so no step).
TEST(CacheTest, StepTraceWriterAndReaderAgree) {
  const std::vector<StepRecord> ran = {{0, 5, 2, {1, 3}, 0.01, 0.012, 1, 0.0},
                                       {1, 2, 2, {}, 0.005, 0.004, 0, 0.0},
                                       {2, 7, 3, {0, 2, 3}, 0.02, 0.018, 2, 0.001}};
  const std::string csv = step_trace_csv(ran);
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "step,expert,tokens,seqs,seconds,predicted,loads,stall");
  auto back = parse_expert_trace(csv, 1, 4);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->steps, (std::vector<std::vector<int>>{{1, 3}, {0, 2, 3}}));
}

// File order decodes one domain at a time; mixed order interleaves them, so a step sees more
// distinct experts (the regime a server is in), with the same uses in total.
TEST(CacheTest, MixedOrderInterleavesTheDomainsOfARoutingTrace) {
  std::string csv = "domain,seq,pos,token,expert\n";
  for (int seq = 0; seq < 40; ++seq)  // 4 domains of 10 sequences, domain d on expert d
    for (int pos = 0; pos < 6; ++pos)
      csv += "d,"s + std::to_string(seq) + "," + std::to_string(pos) + ",5," +
             std::to_string(seq / 10) + "\n";
  auto per_step = [](const ExpertTrace& t) { return double(t.n_accesses()) / t.steps.size(); };
  const ExpertTrace file = parse_expert_trace(csv, 4, 0).value();
  const ExpertTrace mixed = parse_expert_trace(csv, 4, 0, true, 1).value();
  EXPECT_EQ(file.steps.size(), mixed.steps.size());
  EXPECT_LT(per_step(file), 1.5);  // only where one domain hands over to the next
  EXPECT_GT(per_step(mixed), 2.0);
  EXPECT_EQ(parse_expert_trace(csv, 4, 0, true, 1).value().steps, mixed.steps);  // seeded
  EXPECT_NE(parse_expert_trace(csv, 4, 0, true, 2).value().steps, mixed.steps);
  // Belady's advantage shows where every policy is pressed.
  EXPECT_GT(simulate_cache(mixed, 2, Eviction::kBelady, 4).hit_rate(),
            simulate_cache(mixed, 2, Eviction::kLru, 4).hit_rate());
}

}  // namespace
}  // namespace rme
