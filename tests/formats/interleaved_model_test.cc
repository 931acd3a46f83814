// tests/formats: a loaded model's matrices rewritten in the interleaved layout
// (model/interleave_weights.h) give the same logits bit for bit, keep the model's size, and make
// writers refuse the model.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "formats/model_io.h"
#include "kernels/interleave.h"
#include "model/forward.h"
#include "model/interleave_weights.h"
#include "model/random_model.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

// The views interleave_weights should rewrite: every interleavable matrix but the embedding.
int64_t eligible(const Model& m, const KernelConfig& cfg) {
  int64_t n = interleave_helps(cfg, m.weights.output.dtype) ? 1 : 0;  // tied or not
  m.for_each_weight([&](const WeightId& id, const MatView& v) {
    if (id.kind != WeightId::Kind::kTokEmbd && id.kind != WeightId::Kind::kOutput &&
        v.n_out >= 16 && interleave_helps(cfg, v.dtype))
      ++n;
  });
  return n;
}

TEST(InterleavedModelTest, SameLogitsSameSizeAndWritersRefuse) {
  ThreadPool pool(2);
  const std::vector<int> ids = {1, 5, 9, 2, 7, 3, 8};
  KernelConfig inv = KernelConfig::best();
  inv.batch_invariant = true;
  for (DType t : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K, DType::kF16}) {
    for (bool moe : {false, true}) {
      const bool kq = dtype_is_kquant(t);
      LlamaConfig c = test::tiny_config(96, kq ? 256 : 64, 2, 4, 2, kq ? 512 : 160, !moe);
      Model src = moe ? random_moe(c, 3, 0.6, 0.2, t, 5, pool) : random_model(c, t, 5, pool);
      // Through a file, as commands load models: the sources are mapped pages.
      const std::string path = test::temp_dir("interleaved") + "/m.gguf";
      ASSERT_TRUE(write_gguf_model(src, nullptr, path, std::nullopt).ok());
      auto loaded = load_model(path);
      ASSERT_TRUE(loaded.ok()) << loaded.status().message();
      Model& m = *loaded->model;
      const std::vector<float> before = test::batch_then_last_logits(m, inv, ids, pool);
      const size_t bytes = m.weight_bytes();
      const int64_t want = eligible(m, inv);
      auto r = interleave_weights(m, inv, /*skip_routed_experts=*/false, pool);
      ASSERT_TRUE(r.ok()) << r.status().message();
      const bool helps = interleave_helps(inv, t);
      EXPECT_EQ(r->matrices, want) << dtype_name(t) << " moe " << moe;
      if (helps) {
        EXPECT_GE(r->matrices, 2 * 7 + 1) << dtype_name(t) << " moe " << moe;
      }
      EXPECT_EQ(m.interleaved(), helps);
      EXPECT_EQ(m.weight_bytes(), bytes);
      EXPECT_EQ(m.weights.layers[0].wq.layout == WeightLayout::kRows16, helps);
      const std::vector<float> after = test::batch_then_last_logits(m, inv, ids, pool);
      if ((!kq && t != DType::kF16) || !helps) {
        EXPECT_EQ(after, before) << dtype_name(t) << " moe " << moe;
      } else {
        // K-quants' batch-invariant rows run the AVX2 kernel, the interleaved ones the AVX-512
        // kernel (bit-equal to its rows: interleave_test): the same integers in another float
        // order, which can flip an activation's int8 rounding downstream. F16 groups sum each
        // output in one chain where rows use two and a horizontal sum.
        ASSERT_EQ(after.size(), before.size());
        for (size_t i = 0; i < after.size(); ++i)
          ASSERT_NEAR(after[i], before[i], 0.02f * (1 + std::fabs(before[i])))
              << dtype_name(t) << " moe " << moe << " at " << i;
      }
      // Still batch-invariant: the last token run alone equals its row of the batch.
      const size_t V = m.config.n_output(), n = ids.size();
      EXPECT_TRUE(std::equal(after.end() - V, after.end(), after.begin() + (n - 1) * V))
          << dtype_name(t) << " moe " << moe;
      if (helps) {
        const Status st = write_gguf_model(m, nullptr, path + ".out", std::nullopt);
        EXPECT_FALSE(st.ok());
        EXPECT_NE(st.message().find("interleaved"), std::string::npos) << st.message();
      }
      // Interleaving twice changes nothing.
      auto again = interleave_weights(m, inv, false, pool);
      ASSERT_TRUE(again.ok());
      EXPECT_EQ(again->matrices, 0);
    }
  }
}

}  // namespace
}  // namespace rme
