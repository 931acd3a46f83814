// tests/train: the libtorch MoE used for fine-tuning computes what the engine computes — same
// logits (top-1 and top-2 router routing, layer-wise gates) within 1e-4 — and its router targets
// agree with the engine's oracle expert; its routed-pairs path equals the dense masked pass.
#include "train/moe_torch.h"

#include <gtest/gtest.h>

#include "core/thread_pool.h"
#include "formats/model_io.h"
#include "model/forward.h"
#include "moefy/baseline_routers.h"
#include "moefy/carve.h"
#include "moefy/router_init.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

struct Fixture {
  std::unique_ptr<Model> dense;
  Model moe;
};

Fixture make(int top_k) {
  Fixture f;
  auto w = test::random_weights(test::tiny_config(64, 32, 2, 4, 2, 48, false), 3);
  const std::string dir = test::temp_dir("moe_torch_dense");
  test::write_hf_dir(w, dir, DType::kF32);
  f.dense = std::move(load_model(dir)->model);
  ChannelScores s(3, std::vector<std::vector<float>>(2, std::vector<float>(48)));
  for (int g = 0; g < 3; ++g)
    for (int l = 0; l < 2; ++l)
      for (int c = 0; c < 48; ++c) s[g][l][c] = static_cast<float>((c * (g + 5) + 11 * l) % 47);
  auto layout = carve_experts(s, 0.5);
  auto moe = build_moe(*f.dense, *layout, {"a", "b", "c"});
  EXPECT_TRUE(moe.ok());
  f.moe = std::move(*moe);
  f.moe.moe.top_k = top_k;
  f.moe.router = random_router(f.moe.config, 3, {32, 1, 4, 64, 64}, 9);
  return f;
}

std::vector<float> engine_logits(const Model& m, const std::vector<int>& ids) {
  KvCache kv(m, static_cast<int>(ids.size()));
  Forward fwd(m, 5, ThreadPool::global());
  EXPECT_TRUE(fwd.set_routing({RoutingOptions::Mode::kRouter, 0, 0, 0}).ok());
  std::vector<float> out(ids.size() * m.config.n_vocab);
  EXPECT_TRUE(fwd.run(ids, 0, kv, out.data(), true).ok());
  return out;
}

float max_diff(const std::vector<float>& a, const torch::Tensor& b) {
  const float* p = b.data_ptr<float>();
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - p[i]));
  return d;
}

TEST(MoeTorchTest, RouterRoutedLogitsMatchEngine) {
  const std::vector<int64_t> ids64 = {5, 9, 1, 33, 60, 2, 2, 17, 40, 8, 63};
  const std::vector<int> ids(ids64.begin(), ids64.end());
  auto t_ids = torch::tensor(ids64).view({1, -1});
  for (int k : {1, 2}) {
    Fixture f = make(k);
    LlamaTorch backbone(torch_config(f.moe.config));
    backbone->load_from(f.moe);
    MoeExperts experts(f.moe);
    LlamaTorch router(torch_config(f.moe.router->config));
    router->load_from(*f.moe.router);
    torch::NoGradGuard ng;
    auto route = route_weights(router->forward(t_ids), k);
    auto logits =
        backbone->forward(t_ids, [&](int l, const torch::Tensor& h2, const torch::Tensor&) {
          return experts->forward(l, h2, route);
        });
    EXPECT_LE(max_diff(engine_logits(f.moe, ids), logits.contiguous()), 1e-4f) << "top-" << k;
  }
}

// The routed-pairs path (training's) against the dense masked pass (router targets'): same
// outputs and the same gradients for inputs and every expert weight, top-1 and top-2, with an
// expert no token is routed to.
TEST(MoeTorchTest, RoutedPairsMatchTheDenseMaskedPass) {
  for (int k : {1, 2}) {
    Fixture f = make(k);
    MoeExperts experts(f.moe);
    torch::manual_seed(4);
    auto h2 = torch::randn({2, 5, 32});
    auto logits = torch::randn({2, 5, 3});
    logits.select(-1, 2).fill_(-100);  // expert 2 unused with top-1
    auto route = route_weights(logits, k);
    auto run = [&](bool dense) {
      for (auto& p : experts->parameters()) p.mutable_grad() = torch::Tensor();
      auto x = h2.clone().requires_grad_(true);
      torch::Tensor mass;
      auto y = experts->forward(1, x, route, dense ? &mass : nullptr);
      (y * torch::linspace(-1, 1, y.numel()).view(y.sizes())).sum().backward();
      std::vector<torch::Tensor> out = {y.detach(), x.grad()};
      for (auto& p : experts->parameters())
        out.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
      return out;
    };
    auto dense = run(true), sparse = run(false);
    ASSERT_EQ(dense.size(), sparse.size());
    for (size_t i = 0; i < dense.size(); ++i)
      EXPECT_TRUE(torch::allclose(dense[i], sparse[i], 1e-5, 1e-6))
          << "top-" << k << " tensor " << i;
    EXPECT_GT(dense[0].abs().sum().item<float>(), 0.0f);
  }
}

TEST(MoeTorchTest, DenseTargetsPickTheEngineOracle) {
  Fixture f = make(1);
  const std::vector<int64_t> ids64 = {5, 9, 1, 33, 60, 2, 2, 17};
  LlamaTorch dense(torch_config(f.dense->config));
  dense->load_from(*f.dense);
  const auto masks = expert_masks(f.moe.moe);
  torch::NoGradGuard ng;
  torch::Tensor score;
  dense->forward(torch::tensor(ids64).view({1, -1}),
                 [&](int l, const torch::Tensor&, const torch::Tensor& act) {
                   auto a = act.abs();
                   auto m = torch::matmul(a, masks[l]) / a.sum(-1, true);
                   score = score.defined() ? score + m : m;
                   return torch::Tensor();
                 });
  std::vector<int> seen;
  KvCache kv(f.moe, 8);
  Forward fwd(f.moe, 8, ThreadPool::global());
  auto oracle = OracleRouter::create(f.moe, *f.dense, 1, 8, ThreadPool::global(), fwd.kernels());
  ASSERT_TRUE(oracle.ok()) << oracle.status().message();
  fwd.set_router(std::move(*oracle));
  fwd.set_route_observer(
      [&](int, int, int n, int, const int* e) { seen.insert(seen.end(), e, e + n); });
  std::vector<float> logits(8 * 64);
  std::vector<int> ids(ids64.begin(), ids64.end());
  ASSERT_TRUE(fwd.run(ids, 0, kv, logits.data(), true).ok());
  auto label = score.argmax(-1).view({-1});
  for (int t = 0; t < 8; ++t) EXPECT_EQ(seen[t], label[t].item<int64_t>()) << t;
}

}  // namespace
}  // namespace rme
