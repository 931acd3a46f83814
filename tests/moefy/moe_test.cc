// tests/moefy: expert carving on a hand-built example, the all-channels invariant, router
// incremental == full recomputation, MoE checkpoints through safetensors and GGUF.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "core/file.h"
#include "formats/model_io.h"
#include "formats/moe_meta.h"
#include "model/forward.h"
#include "model/type_choice.h"
#include "moefy/baseline_routers.h"
#include "moefy/carve.h"
#include "moefy/router_init.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

using test::random_weights;
using test::temp_dir;
using test::tiny_config;

std::unique_ptr<Model> tiny_dense(const std::string& name, int n_ff = 48, bool qwen2 = false) {
  LlamaConfig c = tiny_config(64, 32, 2, 4, 2, n_ff, false);
  c.attn_bias = qwen2;  // q/k/v biases: carried into the MoE unchanged
  auto w = random_weights(c, 7);
  const std::string dir = temp_dir(name);
  test::write_hf_dir(w, dir, DType::kF32);
  auto lm = load_model(dir);
  EXPECT_TRUE(lm.ok()) << lm.status().message();
  return std::move(lm->model);
}

// setup picks the router (default: the model's own).
std::vector<float> logits_of(const Model& m, const std::vector<int>& ids, int max_tokens,
                             const std::function<void(Forward&)>& setup = {}) {
  KvCache kv(m, static_cast<int>(ids.size()));
  Forward fwd(m, max_tokens, ThreadPool::global());
  if (setup) setup(fwd);
  std::vector<float> out(ids.size() * m.config.n_output());
  Status st = fwd.run(ids, 0, kv, out.data(), true);
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

std::function<void(Forward&)> routed(RoutingOptions o) {
  return [o](Forward& f) { EXPECT_TRUE(f.set_routing(o).ok()); };
}

void layer_gates(Forward& f) {
  auto r = LayerGateRouter::create(f.model(), 1, f.max_tokens(), f.pool(), f.kernels());
  ASSERT_TRUE(r.ok()) << r.status().message();
  f.set_layer_router(std::move(*r));
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

TEST(CarveTest, HandBuiltExample) {
  // 2 domains, 1 layer, 8 channels, keep half (4 each).
  ChannelScores s = {{{9, 8, 7, 6, 0, 0, 0, 0}}, {{9, 0, 8, 0, 7, 6, 0, 0}}};
  auto lay = carve_experts(s, 0.5);
  ASSERT_TRUE(lay.ok());
  EXPECT_EQ(lay->shared[0], (std::vector<int>{0, 2}));
  EXPECT_EQ(lay->experts[0][0], (std::vector<int>{1, 3}));
  EXPECT_EQ(lay->experts[1][0], (std::vector<int>{4, 5}));
  // Ties go to the lower channel index.
  ChannelScores t = {{{1, 1, 1, 1}}};
  EXPECT_EQ(carve_experts(t, 0.5)->shared[0], (std::vector<int>{0, 1}));
  EXPECT_FALSE(carve_experts(s, 0.0).ok());
  EXPECT_FALSE(carve_experts({{{1, 2}}, {{1, 2, 3}}}, 0.5).ok());
  EXPECT_EQ(top_channels({{5, 1, 7, 3}}, {2})[0], (std::vector<int>{0, 2}));
}

TEST(CarveTest, KmeansSeparatesClusters) {
  std::vector<std::vector<float>> rows;
  for (int i = 0; i < 20; ++i)
    rows.push_back(i % 2 ? std::vector<float>{1, 0.1f * (i % 3), 0}
                         : std::vector<float>{0, 0.1f * (i % 3), 1});
  auto a = kmeans(rows, 2, 3);
  ASSERT_TRUE(a.ok());
  for (int i = 2; i < 20; ++i) EXPECT_EQ((*a)[i], (*a)[i % 2]);
  EXPECT_NE((*a)[0], (*a)[1]);
  EXPECT_FALSE(kmeans(rows, 21, 3).ok());
}

// The invariant: one expert holding every channel (no shared channels) is the dense model; so is
// a shared expert holding every channel with an empty expert, whatever the routing.
TEST(MoeTest, AllChannelsEqualsDense) {
  for (bool qwen2 : {false, true}) {
    auto dense = tiny_dense(qwen2 ? "moe_inv_qwen2" : "moe_inv", 48, qwen2);
    EXPECT_EQ(dense->config.attn_bias, qwen2);
    const int F = dense->config.n_ff, L = dense->config.n_layer;
    std::vector<int> all(F);
    std::iota(all.begin(), all.end(), 0);
    const std::vector<int> ids = {1, 5, 9, 3, 60, 2, 2, 7, 33, 12, 0, 63};
    const std::vector<float> want = logits_of(*dense, ids, 4);

    ExpertLayout one{std::vector<std::vector<int>>(L), {std::vector<std::vector<int>>(L, all)}};
    auto moe = build_moe(*dense, one, {"all"});
    ASSERT_TRUE(moe.ok()) << moe.status().message();
    const auto fixed = routed({RoutingOptions::Mode::kFixed, 1, 0, 0});
    EXPECT_EQ(max_diff(logits_of(*moe, ids, 4, fixed), want), 0.0f);
    const auto random = routed({RoutingOptions::Mode::kRandom, 1, 0, 5});
    EXPECT_EQ(max_diff(logits_of(*moe, ids, 4, random), want), 0.0f);  // same chunking: exact

    ExpertLayout shared{std::vector<std::vector<int>>(L, all),
                        {std::vector<std::vector<int>>(L), std::vector<std::vector<int>>(L)}};
    auto moe2 = build_moe(*dense, shared, {"a", "b"});
    ASSERT_TRUE(moe2.ok());
    EXPECT_LT(max_diff(logits_of(*moe2, ids, 3, random), want), 1e-5f);
  }
}

// Routed experts cover their channels only: the split MoE with oracle routing differs from dense
// by exactly the dropped channels, and a 2-expert partition with both experts applied (top-2
// with equal weights, i.e. each contributes half) is not the dense model while top-1 of a
// partition where expert 0 holds everything is.
TEST(MoeTest, OracleRoutingPicksHighestMassExpert) {
  auto dense = tiny_dense("moe_oracle");
  const int F = dense->config.n_ff, L = dense->config.n_layer;
  std::vector<int> lo, hi;
  for (int c = 0; c < F; ++c) (c < F / 2 ? lo : hi).push_back(c);
  ExpertLayout split{std::vector<std::vector<int>>(L),
                     {std::vector<std::vector<int>>(L, lo), std::vector<std::vector<int>>(L, hi)}};
  auto moe = build_moe(*dense, split, {"lo", "hi"});
  ASSERT_TRUE(moe.ok());
  const std::vector<int> ids = {1, 5, 9, 3, 60, 2, 2, 7};
  // Recompute the oracle by hand with the dense model's FFN activations.
  std::vector<float> scores(ids.size() * 2, 0);
  {
    KvCache kv(*dense, 8);
    Forward f(*dense, 8, ThreadPool::global());
    f.set_ffn_probe([&](int l, int n, const float* act, int64_t w) {
      add_expert_mass(moe->moe, l, act, n, w, scores.data());
    });
    ASSERT_TRUE(f.run(ids, 0, kv, nullptr, false).ok());
  }
  std::vector<int> seen;
  KvCache kv(*moe, 8);
  Forward fwd(*moe, 3, ThreadPool::global());
  auto oracle = OracleRouter::create(*moe, *dense, 1, 3, ThreadPool::global(), fwd.kernels());
  ASSERT_TRUE(oracle.ok()) << oracle.status().message();
  EXPECT_FALSE((*oracle)->batchable());
  fwd.set_router(std::move(*oracle));
  fwd.set_route_observer([&](int layer, int, int n, int k, const int* e) {
    EXPECT_EQ(layer, -1);
    seen.insert(seen.end(), e, e + n * k);
  });
  std::vector<float> logits(ids.size() * 64);
  ASSERT_TRUE(fwd.run(ids, 0, kv, logits.data(), true).ok());
  ASSERT_EQ(seen.size(), ids.size());
  for (size_t t = 0; t < ids.size(); ++t)
    EXPECT_EQ(seen[t], scores[2 * t + 1] > scores[2 * t] ? 1 : 0) << t;
  // Oracle needs a matching dense parent; a router needs a router.
  // The batched step refuses a router holding one sequence's state.
  SeqChunk chunk{std::span<const int>(ids.data(), 1), 0, kv.view(), true, {}, {}};
  EXPECT_FALSE(fwd.run_batch(std::span<const SeqChunk>(&chunk, 1), logits.data()).ok());
  // Oracle needs a matching dense parent; a router needs a router; gates need gates.
  EXPECT_FALSE(OracleRouter::create(*moe, *moe, 1, 3, ThreadPool::global(), fwd.kernels()).ok());
  EXPECT_FALSE(fwd.set_routing({RoutingOptions::Mode::kRouter, 1, 0, 0}).ok());
  EXPECT_FALSE(LayerGateRouter::create(*moe, 1, 3, ThreadPool::global(), fwd.kernels()).ok());
  EXPECT_FALSE(fwd.set_routing({RoutingOptions::Mode::kFixed, 1, 2, 0}).ok());
  EXPECT_FALSE(fwd.set_routing({RoutingOptions::Mode::kRandom, 3, 0, 0}).ok());
}

TEST(MoeTest, RouterIncrementalEqualsFullRecomputation) {
  auto dense = tiny_dense("moe_router");
  const int F = dense->config.n_ff, L = dense->config.n_layer;
  std::vector<int> a, b;
  for (int c = 0; c < F; ++c) (c % 3 ? a : b).push_back(c);
  auto moe = build_moe(*dense,
                       {std::vector<std::vector<int>>(L),
                        {std::vector<std::vector<int>>(L, a), std::vector<std::vector<int>>(L, b)}},
                       {"a", "b"});
  ASSERT_TRUE(moe.ok());
  moe->router = random_router(moe->config, 2, {32, 1, 4, 64, 64}, 11);
  const std::vector<int> ids = {3, 17, 4, 4, 22, 61, 9, 0, 5, 31, 30, 2, 8};
  // Router logits: all at once vs one token at a time through its KV cache.
  const std::vector<float> full = logits_of(*moe->router, ids, 16);
  KvCache rkv(*moe->router, 16);
  Forward rf(*moe->router, 1, ThreadPool::global());
  std::vector<float> step(2);
  for (size_t t = 0; t < ids.size(); ++t) {
    ASSERT_TRUE(
        rf.run(std::span<const int>(&ids[t], 1), static_cast<int>(t), rkv, step.data(), false)
            .ok());
    EXPECT_LT(std::fabs(step[0] - full[t * 2]), 1e-5f);
    EXPECT_LT(std::fabs(step[1] - full[t * 2 + 1]), 1e-5f);
  }
  // The MoE decoded token by token routes and predicts as in one prefill.
  const std::vector<float> pre = logits_of(*moe, ids, 16);
  KvCache kv(*moe, 16);
  Forward fwd(*moe, 16, ThreadPool::global());
  const int V = moe->config.n_vocab;
  std::vector<float> one(V);
  for (size_t t = 0; t < ids.size(); ++t) {
    ASSERT_TRUE(
        fwd.run(std::span<const int>(&ids[t], 1), static_cast<int>(t), kv, one.data(), false).ok());
    for (int v = 0; v < V; ++v) ASSERT_NEAR(one[v], pre[t * V + v], 1e-4f) << t;
  }
}

void expect_same_moe(const Model& a, const Model& b, const std::vector<int>& ids, float tol) {
  ASSERT_EQ(a.moe.n_expert, b.moe.n_expert);
  EXPECT_EQ(a.moe.expert_channels, b.moe.expert_channels);
  EXPECT_EQ(a.moe.shared_channels, b.moe.shared_channels);
  EXPECT_EQ(a.moe.expert_names, b.moe.expert_names);
  ASSERT_EQ(static_cast<bool>(a.router), static_cast<bool>(b.router));
  EXPECT_LT(max_diff(logits_of(a, ids, 4), logits_of(b, ids, 4)), tol);
  if (a.moe.has_layer_gate) {
    EXPECT_LT(max_diff(logits_of(a, ids, 4, layer_gates), logits_of(b, ids, 4, layer_gates)), tol);
  }
}

// moefy to GGUF streams (each slice cut from the parent when the writer reaches it): the file is
// byte for byte the one written from the whole carved MoE, for float and quantized parents and
// for output types that convert, quantize or keep the slices; the deferred model cannot run.
TEST(MoeTest, DeferredSlicesWriteTheSameBytes) {
  LlamaConfig c = tiny_config(64, 32, 2, 4, 2, 64, false);
  auto w = random_weights(c, 11);
  const int F = 64, L = c.n_layer;
  ChannelScores s(3, std::vector<std::vector<float>>(L, std::vector<float>(F)));
  for (int g = 0; g < 3; ++g)
    for (int l = 0; l < L; ++l)
      for (int ch = 0; ch < F; ++ch) s[g][l][ch] = static_cast<float>((ch * (g + 3) + l * 7) % 61);
  auto lay = carve_experts(s, 0.5);
  ASSERT_TRUE(lay.ok());
  const std::string dir = temp_dir("moe_deferred");
  int compared = 0;
  for (DType parent : {DType::kF32, DType::kF16, DType::kQ8_0}) {
    const std::string path = dir + "/dense-" + std::string(dtype_name(parent)) + ".gguf";
    test::write_gguf(w, path, parent);
    auto dense = load_model(path);
    ASSERT_TRUE(dense.ok()) << dense.status().message();
    auto eager = build_moe(*dense->model, *lay, {"x", "y", "z"});
    auto lazy = build_moe(*dense->model, *lay, {"x", "y", "z"}, /*deferred=*/true);
    ASSERT_TRUE(eager.ok() && lazy.ok());
    ASSERT_TRUE(lazy->deferred);
    EXPECT_EQ(lazy->weights.layers[1].experts[2].down.data, nullptr);  // nothing copied
    for (const char* type : {"f32", "f16", "q8_0", "q4_0"}) {
      const TypeChoice t = TypeChoice::parse(type).value();
      const std::string a = dir + "/eager.gguf", b = dir + "/lazy.gguf";
      ASSERT_TRUE(write_gguf_model(*eager, dense->tokenizer.get(), a, t).ok());
      ASSERT_TRUE(write_gguf_model(*lazy, dense->tokenizer.get(), b, t).ok());
      EXPECT_EQ(read_file(a).value(), read_file(b).value())
          << dtype_name(parent) << " parent, " << type << " out";
      ++compared;
    }
    for (DType t : {DType::kF32, DType::kBF16}) {  // safetensors directories
      ASSERT_TRUE(write_hf_model(*eager, nullptr, dir + "/eager_hf", t).ok());
      ASSERT_TRUE(write_hf_model(*lazy, nullptr, dir + "/lazy_hf", t).ok());
      EXPECT_EQ(read_file(dir + "/eager_hf/model.safetensors").value(),
                read_file(dir + "/lazy_hf/model.safetensors").value())
          << dtype_name(parent) << " parent, " << dtype_name(t) << " safetensors";
      ++compared;
    }
  }
  EXPECT_EQ(compared, 18);
  auto dense = load_model(dir + "/dense-f32.gguf");
  ASSERT_TRUE(dense.ok());
  auto lazy = build_moe(*dense->model, *lay, {"x", "y", "z"}, /*deferred=*/true);
  ASSERT_TRUE(lazy.ok());
  EXPECT_DEATH(
      {
        ThreadPool pool(1);
        Forward fwd(*lazy, 4, pool);
      },
      "deferred weights");
}

TEST(MoeTest, CheckpointRoundTripBothFormats) {
  auto dense = tiny_dense("moe_rt", 64);
  const int F = 64, L = dense->config.n_layer;
  ChannelScores s(3, std::vector<std::vector<float>>(L, std::vector<float>(F)));
  for (int g = 0; g < 3; ++g)
    for (int l = 0; l < L; ++l)
      for (int c = 0; c < F; ++c) s[g][l][c] = static_cast<float>((c * (g + 3) + l * 7) % 61);
  auto lay = carve_experts(s, 0.5);
  ASSERT_TRUE(lay.ok());
  auto moe = build_moe(*dense, *lay, {"x", "y", "z"});
  ASSERT_TRUE(moe.ok());
  moe->router = random_router(moe->config, 3, {32, 1, 4, 64, 64}, 5);
  moe->moe.has_layer_gate = true;
  std::vector<std::vector<float>> gates(L);
  for (int l = 0; l < L; ++l) {
    gates[l].resize(3 * 32);
    for (size_t i = 0; i < gates[l].size(); ++i) gates[l][i] = std::sin(1.0f + i * (l + 1));
    moe->weights.layers[l].layer_gate = {DType::kF32, 3, 32, model_own_floats(*moe, gates[l])};
  }
  const std::vector<int> ids = {3, 17, 4, 4, 22, 61, 9, 0, 5};
  const std::string dir = temp_dir("moe_rt_hf");
  ASSERT_TRUE(write_hf_model(*moe, nullptr, dir, DType::kF32).ok());
  auto hf = load_model(dir);
  ASSERT_TRUE(hf.ok()) << hf.status().message();
  expect_same_moe(*moe, *hf->model, ids, 1e-5f);
  const std::string gguf = temp_dir("moe_rt_gguf") + "/m.gguf";
  ASSERT_TRUE(write_gguf_model(*hf->model, nullptr, gguf, DType::kF32).ok());
  auto gg = load_model(gguf);
  ASSERT_TRUE(gg.ok()) << gg.status().message();
  expect_same_moe(*moe, *gg->model, ids, 1e-4f);
  // Quantized experts (GGUF Q8_0) still load and stay close.
  const std::string q8 = temp_dir("moe_rt_q8") + "/m.gguf";
  ASSERT_TRUE(write_gguf_model(*hf->model, nullptr, q8, DType::kQ8_0).ok());
  auto gq = load_model(q8);
  ASSERT_TRUE(gq.ok()) << gq.status().message();
  EXPECT_LT(max_diff(logits_of(*moe, ids, 4), logits_of(*gq->model, ids, 4)), 0.05f);
  // Each expert's slices for all layers: one contiguous, page-aligned range in the file.
  for (const Model* m : {hf->model.get(), gg->model.get(), gq->model.get()}) {
    auto r = expert_ranges(*m);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ(r->size(), 3u);
    for (const ExpertRange& e : *r) {
      EXPECT_EQ(e.offset % 4096, 0u) << m->source;
      // GGUF pads tensors to 32 bytes inside the range; safetensors packs them.
      EXPECT_LE(e.bytes - e.tensor_bytes, m->format == "gguf" ? 32u * 3 * L : 0u) << m->source;
    }
  }
}

}  // namespace
}  // namespace rme
