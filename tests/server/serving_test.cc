// tests/server: continuous batching end to end on tiny random models — batch invariance under
// every policy, cache budget and KV pressure, expert cache behaviour, bad requests.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "formats/model_io.h"
#include "kernels/matmul.h"
#include "model/forward.h"
#include "model/random_model.h"
#include "moefy/router_init.h"
#include "server/serving_loop.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

struct Fixture {
  std::unique_ptr<Model> moe, dense;
  std::vector<RequestParams> requests;
};

Fixture& fixture() {
  static Fixture* f = [] {
    auto* f = new Fixture();
    ThreadPool pool(2);
    LlamaConfig c = test::tiny_config(96, 64, 2, 4, 2, 256, false);
    c.n_ctx = 128;
    const std::string dir = test::temp_dir("serving");
    Model moe = random_moe(c, 4, 0.5, 0.25, DType::kQ8_0, 11, pool);
    moe.router = random_router(c, 4, default_router_shape(c), 13);
    EXPECT_TRUE(write_gguf_model(moe, nullptr, dir + "/moe.gguf", std::nullopt).ok());
    f->moe = std::move(load_model(dir + "/moe.gguf")->model);
    EXPECT_TRUE(f->moe->router != nullptr);
    Model dense = random_model(c, DType::kF16, 12, pool);
    EXPECT_TRUE(write_gguf_model(dense, nullptr, dir + "/dense.gguf", std::nullopt).ok());
    f->dense = std::move(load_model(dir + "/dense.gguf")->model);
    std::mt19937 rng(5);
    for (int len : {3, 40, 17, 1, 29, 9}) {
      RequestParams r;
      for (int i = 0; i < len; ++i) r.prompt.push_back(static_cast<int>(rng() % 96));
      r.max_new = 12;
      r.sampling.temperature = 0;
      r.ignore_eos = true;
      f->requests.push_back(r);
    }
    return f;
  }();
  return *f;
}

struct RunResult {
  std::vector<std::vector<int>> tokens;
  int64_t preemptions = 0;
  ExpertStoreStats cache;
  int max_step_experts = 0;
};

RunResult run(const Model& m, const std::vector<RequestParams>& reqs, const std::string& policy,
              int max_tokens, int n_block, int64_t cache_bytes, bool together) {
  ThreadPool pool(2);
  BatchEngineOptions eo;
  eo.block_size = 8;
  eo.n_block = n_block;
  ServingOptions so;
  so.policy = policy;
  if (policy == "expert+cost") {  // a cost model under which grouping by expert pays
    so.policy = "expert";
    so.cost_prior.fixed = 1e-4;
    so.cost_prior.per_token = 1e-5;
    so.cost_prior.per_expert = 1e-2;
  }
  so.budget.max_tokens = max_tokens;
  so.budget.prefill_chunk = 8;
  so.budget.aging_steps = 4;
  so.expert_cache_bytes = cache_bytes;
  auto loop = ServingLoop::create(m, pool, eo, so);
  EXPECT_TRUE(loop.ok()) << loop.status().message();
  RunResult out;
  auto drain = [&](std::vector<std::shared_ptr<RequestStream>>& streams) {
    for (int guard = 0; guard < 10000; ++guard) {
      auto worked = (*loop)->step();
      EXPECT_TRUE(worked.ok()) << worked.status().message();
      if (!worked.ok() || !*worked) break;
    }
    for (auto& s : streams) {
      std::vector<int> toks;
      StreamToken t;
      while (s->next(&t, 0)) toks.push_back(t.id);
      EXPECT_EQ(s->finished(), FinishReason::kLength) << s->error().message();
      out.tokens.push_back(toks);
    }
  };
  if (together) {
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const auto& r : reqs) streams.push_back((*loop)->submit(r));
    drain(streams);
  } else {
    for (const auto& r : reqs) {
      std::vector<std::shared_ptr<RequestStream>> one = {(*loop)->submit(r)};
      drain(one);
    }
  }
  out.preemptions = (*loop)->metrics().counter("preemptions_total");
  out.cache = (*loop)->cache_stats();
  for (const auto& s : (*loop)->take_steps())
    out.max_step_experts = std::max(out.max_step_experts, static_cast<int>(s.experts.size()));
  return out;
}

// The serving engine's kernels are batch-invariant by default (BatchEngineOptions::kernels).
TEST(BatchInvariance, GreedyOutputsDoNotDependOnBatchingPolicyCacheOrPreemption) {
  Fixture& f = fixture();
  const RunResult alone = run(*f.moe, f.requests, "fcfs", 64, 64, 0, false);
  for (const auto& t : alone.tokens) ASSERT_EQ(t.size(), 12u);
  const int64_t expert_bytes = [&] {
    ExpertStoreOptions o;
    o.budget_bytes = int64_t{1} << 30;
    return ExpertStore::open(*f.moe, o).value()->expert_bytes();
  }();
  bool preempted = false;
  for (const std::string policy : {"fcfs", "expert", "expert+cost"})
    for (int cached : {0, 1, 2, 4})
      for (int n_block : {64, 9}) {  // 9 blocks of 8: the 6 requests cannot all fit at once
        const RunResult r =
            run(*f.moe, f.requests, policy, 16, n_block, cached * expert_bytes, true);
        EXPECT_EQ(r.tokens, alone.tokens) << policy << " cache " << cached << " blocks " << n_block;
        preempted |= r.preemptions > 0;
        if (cached > 0) {
          EXPECT_LE(r.max_step_experts, cached);
          EXPECT_GT(r.cache.hits + r.cache.misses, 0);
          if (cached < 4) {
            EXPECT_GT(r.cache.misses, 4);  // it really had to evict and reload
          }
        }
      }
  EXPECT_TRUE(preempted);  // KV pressure forced recomputation somewhere
}

// A Read-ME MoE with K-quant experts (q4_k_m: Q4_K, and Q6_K down slices in the last layer),
// served through the expert cache: the K-quant kernel is batch-invariant too.
TEST(BatchInvariance, KQuantExpertsServeTheSameTokensBatchedAndCached) {
  ThreadPool pool(2);
  LlamaConfig c = test::tiny_config(96, 256, 2, 4, 2, 1024, false);
  c.n_ctx = 128;
  Model src = random_moe(c, 4, 0.5, 0.25, DType::kF16, 17, pool);
  src.router = random_router(c, 4, default_router_shape(c), 19);
  const std::string path = test::temp_dir("serving_kquant") + "/moe.gguf";
  auto mix = TypeChoice::parse("q4_k_m");
  ASSERT_TRUE(mix.ok());
  ASSERT_TRUE(write_gguf_model(src, nullptr, path, *mix).ok());
  auto lm = load_model(path);
  ASSERT_TRUE(lm.ok()) << lm.status().message();
  const Model& m = *lm->model;
  EXPECT_EQ(m.weights.layers[0].experts[1].gate.dtype, DType::kQ4_K);
  EXPECT_EQ(m.weights.layers[1].experts[1].down.dtype, DType::kQ6_K);
  const std::vector<RequestParams>& reqs = fixture().requests;
  const RunResult alone = run(m, reqs, "fcfs", 64, 64, 0, false);
  const int64_t expert_bytes = [&] {
    ExpertStoreOptions o;
    o.budget_bytes = int64_t{1} << 30;
    return ExpertStore::open(m, o).value()->expert_bytes();
  }();
  for (const std::string policy : {"fcfs", "expert"}) {
    const RunResult r = run(m, reqs, policy, 16, 64, 2 * expert_bytes, true);
    EXPECT_EQ(r.tokens, alone.tokens) << policy;
    EXPECT_GT(r.cache.misses, 4) << policy;
  }
}

TEST(BatchInvariance, DenseModelsBatchToo) {
  Fixture& f = fixture();
  const RunResult alone = run(*f.dense, f.requests, "fcfs", 64, 64, 0, false);
  EXPECT_EQ(run(*f.dense, f.requests, "fcfs", 16, 9, 0, true).tokens, alone.tokens);
  EXPECT_EQ(run(*f.dense, f.requests, "expert", 16, 64, 0, true).tokens, alone.tokens);
}

// The mechanism behind the test above, at the Forward level: a token's logits are bit-identical
// whether it runs alone or in a batch with other sequences (paged), in batch-invariant mode, for
// the fixture's F16 model and a Q8_0 one. With the mode off, Q8_0 shows why the mode exists: a
// one-token step (the integer decode kernel) and a batched step (the matrix-product prefill)
// round differently. (F16 on AVX2 and NEON, and Q4_0 on AVX2, run kernels that are invariant
// either way.)
TEST(BatchForwardTest, LogitsOfABatchedTokenEqualItsSoloLogitsInInvariantMode) {
  Fixture& f = fixture();
  ThreadPool pool(2);
  const Model q8 = random_model(f.dense->config, DType::kQ8_0, 12, pool);
  auto logits_of = [&](const Model& m, bool batched, bool invariant) {
    KernelConfig kernels = KernelConfig::best();
    kernels.batch_invariant = invariant;
    Forward fwd(m, 64, pool, kernels);
    PagedKv kv(m.config, 16, 8);
    std::vector<int> a_blocks = {3, 5, 7}, b_blocks = {0, 1, 2, 4, 6};
    const auto& a = f.requests[2].prompt;  // 17 tokens
    const auto& b = f.requests[1].prompt;  // 40 tokens
    const int V = m.config.n_vocab;
    std::vector<float> out(2 * V);
    EXPECT_TRUE(
        fwd.run_batch(
               std::vector<SeqChunk>{
                   {std::span<const int>(a).first(16), 0, kv.view(a_blocks), false, {}, {}}},
               out.data())
            .ok());
    // a's last token: alone a one-token step, batched an 8-token one.
    SeqChunk ca{std::span<const int>(a).subspan(16), 16, kv.view(a_blocks), true, {}, {}};
    SeqChunk cb{std::span<const int>(b).first(7), 0, kv.view(b_blocks), true, {}, {}};
    if (batched) {
      const SeqChunk both[] = {ca, cb};
      EXPECT_TRUE(fwd.run_batch(both, out.data()).ok());
    } else {
      EXPECT_TRUE(fwd.run_batch(std::span<const SeqChunk>(&ca, 1), out.data()).ok());
    }
    out.resize(V);
    return out;
  };
  for (const Model* m : {static_cast<const Model*>(f.dense.get()), &q8})
    EXPECT_EQ(logits_of(*m, true, true), logits_of(*m, false, true))
        << dtype_name(m->weights.layers[0].wq.dtype);
  // The batch does reach the logits somewhere outside that mode (F32 prefill runs sgemm, Q8_0 on
  // AVX-512 its panel kernel; AVX2's F16, Q8_0 and Q4_0 kernels are invariant in both modes), so
  // the equalities above are not vacuous.
  const Model f32 = random_model(f.dense->config, DType::kF32, 12, pool);
  EXPECT_TRUE(logits_of(q8, true, false) != logits_of(q8, false, false) ||
              logits_of(f32, true, false) != logits_of(f32, false, false));
}

TEST(ServingTest, BadRequestsFinishWithAnErrorAndTheLoopKeepsServing) {
  Fixture& f = fixture();
  ThreadPool pool(2);
  auto loop = ServingLoop::create(*f.moe, pool, {}, {}).value();
  RequestParams empty, too_long = f.requests[0], bad_token = f.requests[0];
  too_long.max_new = 1000;
  bad_token.prompt.push_back(96);
  auto a = loop->submit(empty), b = loop->submit(too_long), c = loop->submit(bad_token),
       ok = loop->submit(f.requests[1]);
  while (loop->step().value()) {
  }
  for (auto* s : {&a, &b, &c}) {
    EXPECT_EQ((*s)->finished(), FinishReason::kError);
    EXPECT_FALSE((*s)->error().message().empty());
  }
  EXPECT_EQ(ok->finished(), FinishReason::kLength);
  int n_tokens = 0;
  for (StreamToken t; ok->next(&t, 0);) ++n_tokens;
  EXPECT_EQ(n_tokens, 12);
}

TEST(ServingTest, CancelledRequestsFreeTheirBlocks) {
  Fixture& f = fixture();
  ThreadPool pool(2);
  auto loop = ServingLoop::create(*f.moe, pool, {}, {}).value();
  RequestParams r = f.requests[1];
  r.max_new = 80;
  auto s = loop->submit(r);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(loop->step().value());
  s->cancel();
  while (loop->step().value()) {
  }
  EXPECT_EQ(s->finished(), FinishReason::kCancelled);
  auto m = loop->metrics().render();
  EXPECT_NE(m.find("rme_kv_blocks_used 0"), std::string::npos) << m;
}

// A stop string found on the loop thread ends the request at that token with kStop and frees its
// blocks, even at the token where the length rule would also end it (the client saw the stop
// there too: the finish and its count must not depend on which thread looked first).
TEST(ServingTest, StopChecksEndRequestsAtTheirTokenAndOutrankTheLengthRule) {
  Fixture& f = fixture();
  ThreadPool pool(2);
  auto loop = ServingLoop::create(*f.moe, pool, {}, {}).value();
  RequestParams r = f.requests[1];
  r.max_new = 6;
  auto stop_at = [](int n) {
    auto seen = std::make_shared<int>(0);
    return [seen, n](int) { return ++*seen == n; };
  };
  auto early = loop->submit(r, stop_at(3)), last = loop->submit(r, stop_at(6)),
       never = loop->submit(r, stop_at(7));
  while (loop->step().value()) {
  }
  auto count = [](RequestStream& s) {
    int n = 0;
    for (StreamToken t; s.next(&t, 0);) ++n;
    return n;
  };
  EXPECT_EQ(early->finished(), FinishReason::kStop);
  EXPECT_EQ(count(*early), 3);
  EXPECT_EQ(last->finished(), FinishReason::kStop);
  EXPECT_EQ(count(*last), 6);
  EXPECT_EQ(never->finished(), FinishReason::kLength);
  EXPECT_EQ(count(*never), 6);
  EXPECT_EQ(loop->metrics().counter("requests_total{status=\"stop\"}"), 2);
  EXPECT_EQ(loop->metrics().counter("requests_total{status=\"length\"}"), 1);
  const std::string m = loop->metrics().render();
  EXPECT_NE(m.find("rme_kv_blocks_used 0"), std::string::npos) << m;
}

// The gauges say how many live requests hold KV (running) and how many wait (not admitted yet, or
// preempted); the expert cache's totals are counters.
TEST(ServingTest, MetricsCountRunningAndWaitingRequests) {
  Fixture& f = fixture();
  ThreadPool pool(2);
  ServingOptions so;
  so.budget.max_seqs = 1;  // one sequence per step: the second waits
  auto loop = ServingLoop::create(*f.dense, pool, {}, so).value();
  RequestParams r = f.requests[0];
  r.max_new = 4;
  auto a = loop->submit(r), b = loop->submit(r);
  ASSERT_TRUE(loop->step().value());
  std::string m = loop->metrics().render();
  EXPECT_NE(m.find("rme_running_requests 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("rme_waiting_requests 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("# TYPE rme_expert_cache_hits_total counter\n"), std::string::npos) << m;
  while (loop->step().value()) {
  }
  m = loop->metrics().render();
  EXPECT_NE(m.find("rme_running_requests 0\n"), std::string::npos) << m;
  EXPECT_NE(m.find("rme_waiting_requests 0\n"), std::string::npos) << m;
}

// Start-up times a prefill and a decode step, so the step cost model has parameters before the
// first request; every step records its prediction.
TEST(ServingTest, CalibratesTheStepCostModelBeforeServing) {
  Fixture& f = fixture();
  ThreadPool pool(2);
  for (const Model* m : {f.moe.get(), f.dense.get()}) {
    auto loop = ServingLoop::create(*m, pool, {}, {}).value();
    const StepCostParams p = loop->step_cost();
    EXPECT_TRUE(p.enabled());
    for (double v : {p.fixed, p.per_token, p.per_expert, p.per_load, p.per_ctx}) {
      EXPECT_TRUE(std::isfinite(v));
      EXPECT_GE(v, 0.0);
    }
    EXPECT_GT(p.fixed + p.per_expert, 0.0);  // weights are read
    EXPECT_EQ(p.per_load, 0.0);              // no expert cache: nothing is loaded from disk
    auto s = loop->submit(f.requests[0]);
    while (loop->step().value()) {
    }
    EXPECT_EQ(s->finished(), FinishReason::kLength);
    const auto steps = loop->take_steps();
    ASSERT_FALSE(steps.empty());
    for (const auto& st : steps) EXPECT_GT(st.predicted, 0.0);
  }
  ServingOptions off;
  off.calibrate = false;
  EXPECT_FALSE(ServingLoop::create(*f.moe, pool, {}, off).value()->step_cost().enabled());
}

TEST(ServingTest, ExpertCacheBudgetBelowOneExpertIsRefused) {
  Fixture& f = fixture();
  ThreadPool pool(2);
  ServingOptions so;
  so.expert_cache_bytes = 100;
  EXPECT_FALSE(ServingLoop::create(*f.moe, pool, {}, so).ok());
}

}  // namespace
}  // namespace rme
