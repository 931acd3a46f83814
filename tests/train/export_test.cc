// tests/train: a LlamaTorch exported as a Hugging Face directory gives the engine the same logits
// as libtorch (F32, max abs diff <= 1e-4), tied and untied, GQA, with q/k/v biases (Qwen2); and
// load_from reads it back.
#include "train/export.h"

#include <gtest/gtest.h>

#include "core/thread_pool.h"
#include "formats/model_io.h"
#include "model/forward.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

TEST(ExportTest, EngineLogitsEqualTorchLogits) {
  for (int variant = 0; variant < 4; ++variant) {
    const bool tied = variant == 0, qwen2 = variant == 2;  // qwen2: q/k/v biases
    LlamaConfig c = test::tiny_config(101, 48, 2, 6, 2, 80, tied);
    c.n_ctx = 32;
    c.attn_bias = qwen2;
    if (variant == 3) c.sliding_window = 4;  // Mistral: the training model windows as the engine
    LlamaTorch m(c);
    m->init_weights(42);
    {
      // Trained models have non-trivial norms and biases; perturb so the test covers them.
      torch::NoGradGuard ng;
      for (auto& p : m->no_decay_params()) p.add_(torch::randn_like(p) * 0.1);
    }
    const std::string dir = test::temp_dir("export_" + std::to_string(variant));
    ASSERT_TRUE(export_hf(*m, dir, DType::kF32).ok());
    std::vector<int64_t> ids64 = {1, 7, 99, 3, 3, 50, 12, 0, 100, 64, 8, 9, 31};
    torch::Tensor want;
    {
      torch::NoGradGuard ng;
      want = m->forward(torch::tensor(ids64).view({1, -1})).squeeze(0).contiguous();
    }
    auto lm = load_model(dir);
    ASSERT_TRUE(lm.ok()) << lm.status().message();
    std::vector<int> ids(ids64.begin(), ids64.end());
    KvCache kv(*lm->model, static_cast<int>(ids.size()));
    Forward fwd(*lm->model, 4, ThreadPool::global());
    std::vector<float> got(ids.size() * c.n_vocab);
    ASSERT_TRUE(fwd.run(ids, 0, kv, got.data(), true).ok());
    float d = 0;
    const float* w = want.data_ptr<float>();
    for (size_t i = 0; i < got.size(); ++i) d = std::max(d, std::fabs(got[i] - w[i]));
    EXPECT_LE(d, 1e-4f) << "variant " << variant;
    EXPECT_EQ(lm->model->config.attn_bias, qwen2);
    EXPECT_EQ(lm->model->config.sliding_window, c.sliding_window);
    // And back: a LlamaTorch loaded from the engine's model computes the same logits.
    LlamaTorch back(c);
    back->load_from(*lm->model);
    torch::NoGradGuard ng;
    auto again = back->forward(torch::tensor(ids64).view({1, -1})).squeeze(0).contiguous();
    EXPECT_LE((again - want).abs().max().item<float>(), 1e-5f) << "variant " << variant;
  }
}

}  // namespace
}  // namespace rme
