// tests/train: the bounded-memory MoE (train/bounded_moe.h) computes the full-precision path's loss
// and gradients (LlamaTorch + MoeExperts) on a 16-bit model, top-1 and top-2; its selection writes
// tuned experts back; a save/load round trip restores the same model; the router rounds'
// targets from the current experts equal the full path's.
#include "train/bounded_moe.h"

#include <gtest/gtest.h>

#include "formats/model_io.h"
#include "moefy/carve.h"
#include "moefy/router_init.h"
#include "train/moe_torch.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

// A 2-layer MoE of 3 experts whose weights are bf16 (so 16-bit storage loses nothing).
Model make_moe(int top_k, std::unique_ptr<Model>& dense) {
  auto w = test::random_weights(test::tiny_config(64, 32, 2, 4, 2, 48, false), 3);
  const std::string dir = test::temp_dir("bounded_dense");
  test::write_hf_dir(w, dir, DType::kBF16);
  dense = std::move(load_model(dir)->model);
  ChannelScores s(3, std::vector<std::vector<float>>(2, std::vector<float>(48)));
  for (int g = 0; g < 3; ++g)
    for (int l = 0; l < 2; ++l)
      for (int c = 0; c < 48; ++c) s[g][l][c] = static_cast<float>((c * (g + 5) + 11 * l) % 47);
  auto layout = carve_experts(s, 0.5);
  EXPECT_TRUE(layout.ok());
  Model moe = std::move(build_moe(*dense, *layout, {"a", "b", "c"}).value());
  moe.moe.top_k = top_k;
  return moe;
}

torch::Tensor ids_batch() {
  torch::manual_seed(11);
  return torch::randint(0, 64, {2, 9}, torch::kInt64);
}

torch::Tensor route_for(const torch::Tensor& ids, int k) {
  torch::manual_seed(5);
  auto logits = torch::randn({ids.size(0), ids.size(1) - 1, 3});
  return route_weights(logits, k);
}

TEST(BoundedMoeTest, LossAndGradientsEqualTheFullPrecisionPath) {
  for (int k : {1, 2}) {
    std::unique_ptr<Model> dense;
    Model moe = make_moe(k, dense);
    const auto ids = ids_batch();
    const auto route = route_for(ids, k);
    const int64_t T = ids.size(1) - 1;
    LlamaTorch backbone(torch_config(moe.config));
    backbone->load_from(moe);
    MoeExperts experts(moe);
    auto logits = backbone->forward(ids.narrow(1, 0, T),
                                    [&](int l, const torch::Tensor& h2, const torch::Tensor&) {
                                      return experts->forward(l, h2, route);
                                    });
    auto full = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                     ids.narrow(1, 1, T).reshape({-1}));
    full.backward();
    for (int sel : {0, 2}) {
      BoundedMoe bm(moe, torch::kBFloat16);
      bm.select(sel);
      const double loss = bm.loss(ids, route, true);
      EXPECT_NEAR(loss, full.item<double>(), 1e-5) << "top-" << k;
      const auto params = bm.parameters();
      // Shared experts first (gate, up, down per layer), then the selected expert's.
      size_t i = 0;
      for (const auto& L : backbone->layers)
        for (const auto& w : {L.gate, L.up, L.down}) {
          ASSERT_LT(i, params.size());
          EXPECT_TRUE(torch::allclose(params[i].grad(), w.grad(), 1e-4, 1e-6)) << i;
          ++i;
        }
      for (int l = 0; l < moe.config.n_layer; ++l) {
        int64_t off = 0;
        for (int e = 0; e < sel; ++e) off += moe.moe.expert_width(e, l);
        const int64_t W = moe.moe.expert_width(sel, l);
        EXPECT_TRUE(torch::allclose(params[i++].grad(), experts->gate[l].grad().narrow(0, off, W),
                                    1e-4, 1e-6));
        EXPECT_TRUE(torch::allclose(params[i++].grad(), experts->up[l].grad().narrow(0, off, W),
                                    1e-4, 1e-6));
        EXPECT_TRUE(torch::allclose(params[i++].grad(), experts->down[l].grad().narrow(1, off, W),
                                    1e-4, 1e-6));
      }
      EXPECT_EQ(i, params.size());
      EXPECT_NEAR(bm.loss(ids, route, false), loss, 1e-6);
    }
    // A group of layers at a time: expert 1 and the shared experts trainable in layer 1 only,
    // after a turn of layer 0's group (whose gradients must not stay behind).
    BoundedMoe bm(moe, torch::kBFloat16);
    bm.select(1, 0, 1);
    bm.loss(ids, route, true);
    bm.select(1, 1, 2);
    EXPECT_NEAR(bm.loss(ids, route, true), full.item<double>(), 1e-5);
    const auto params = bm.parameters();
    ASSERT_EQ(params.size(), 6u);
    const auto& L1 = backbone->layers[1];
    EXPECT_TRUE(torch::allclose(params[0].grad(), L1.gate.grad(), 1e-4, 1e-6));
    EXPECT_TRUE(torch::allclose(params[2].grad(), L1.down.grad(), 1e-4, 1e-6));
    const int64_t off = moe.moe.expert_width(0, 1), W = moe.moe.expert_width(1, 1);
    EXPECT_TRUE(
        torch::allclose(params[3].grad(), experts->gate[1].grad().narrow(0, off, W), 1e-4, 1e-6));
    EXPECT_TRUE(torch::allclose(params.back().grad(), experts->down[1].grad().narrow(1, off, W),
                                1e-4, 1e-6));
    bm.select(-1);  // no routed expert: every shared expert, no gradient left from the turn
    const auto all = bm.parameters();
    ASSERT_EQ(all.size(), 3u * moe.config.n_layer);
    for (const auto& t : all) EXPECT_FALSE(t.grad().defined());
  }
}

// Router rounds' targets from the current experts equal the full path's (finetune.cc's
// moe_forward: MoeExperts with every expert's mass), top-1 and top-2, and follow a tuned expert.
TEST(BoundedMoeTest, ExpertScoresEqualTheFullPathsTargets) {
  for (int k : {1, 2}) {
    std::unique_ptr<Model> dense;
    Model moe = make_moe(k, dense);
    const auto ids = ids_batch().narrow(1, 0, 8);
    const auto route = route_for(ids_batch(), k);
    const int L = moe.config.n_layer;
    LlamaTorch backbone(torch_config(moe.config));
    backbone->load_from(moe);
    MoeExperts experts(moe);
    torch::Tensor want;
    {
      torch::NoGradGuard ng;
      backbone->forward(ids, [&](int l, const torch::Tensor& h2, const torch::Tensor& act) {
        torch::Tensor mass;
        auto y = experts->forward(l, h2, route, &mass);
        auto share = mass / (mass.sum(-1, true) + act.abs().sum(-1, true)).clamp_min(1e-20);
        want = want.defined() ? want + share / L : share / L;
        return y;
      });
    }
    BoundedMoe bm(moe, torch::kBFloat16);
    const auto got = bm.expert_scores(ids, route);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6)) << (got - want).abs().max();
    EXPECT_TRUE(torch::equal(got.argmax(-1), want.argmax(-1)));
    EXPECT_TRUE(got.sum(-1).le(1.0 + 1e-6).all().item<bool>());
    // The expert in its turn is read from its f32 copy; once written back (bf16), a model made
    // from the written-back weights gives the same scores.
    bm.select(1);
    {
      torch::NoGradGuard ng;
      torch::manual_seed(3);
      for (auto& t : bm.parameters()) t.add_(torch::randn_like(t) * 0.05);
    }
    const auto tuned = bm.expert_scores(ids, route);
    EXPECT_FALSE(torch::allclose(tuned, got, 1e-3, 1e-4));
    Model v = bm.view_model(moe);
    const auto written = bm.expert_scores(ids, route);
    EXPECT_TRUE(torch::allclose(written, tuned, 2e-2, 2e-3));  // bf16 rounding of the tuned ones
    BoundedMoe again(v, torch::kBFloat16);
    EXPECT_TRUE(torch::allclose(again.expert_scores(ids, route), written, 1e-6, 1e-7));
  }
}

TEST(BoundedMoeTest, TunedExpertsAreWrittenBackAndSurviveASaveAndLoad) {
  std::unique_ptr<Model> dense;
  Model moe = make_moe(1, dense);
  const auto ids = ids_batch();
  const auto route = route_for(ids, 1);
  BoundedMoe bm(moe, torch::kBFloat16);
  const double before = bm.loss(ids, route, false);
  bm.select(1);
  {
    torch::NoGradGuard ng;
    for (auto& p : bm.parameters()) p.add_(0.05);
  }
  bm.select(0);  // expert 1's change goes to storage; expert 0 is now the trainable one
  const double after = bm.loss(ids, route, false);
  EXPECT_GT(std::fabs(after - before), 1e-3);
  torch::serialize::OutputArchive out;
  bm.save(out);
  std::stringstream buf;
  out.save_to(buf);
  BoundedMoe again(moe, torch::kBFloat16);
  EXPECT_NEAR(again.loss(ids, route, false), before, 1e-6);
  torch::serialize::InputArchive in;
  in.load_from(buf);
  again.load(in);
  EXPECT_EQ(again.selected(), 0);
  EXPECT_EQ(again.loss(ids, route, false), after);
  // The exported view holds the tuned weights: the engine's logits follow them.
  Model view = again.view_model(moe);
  EXPECT_EQ(view.weights.layers[0].experts[1].gate.dtype, DType::kBF16);
  EXPECT_EQ(view.weights.layers[0].w_gate.dtype, DType::kF32);
}

}  // namespace
}  // namespace rme
