// tests/formats: a loaded float model converted for the opt-in bf16 products
// (model/bf16_weights.h) — which matrices change, logits close to the file's and batch-invariant.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "formats/model_io.h"
#include "kernels/gemm_bf16.h"
#include "model/bf16_weights.h"
#include "model/forward.h"
#include "model/random_model.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

TEST(Bf16ModelTest, FloatMatricesBecomeBf16AndLogitsStayClose) {
  KernelConfig cfg = KernelConfig::best();
  if (!cpu_has(Isa::kAvx512) || !cpu_features().avx512bf16)
    GTEST_SKIP() << "no AVX512-BF16 on this CPU: the bf16 products cannot run";
  cfg.isa = Isa::kAvx512;
  auto b = cfg.with_bf16();
  ASSERT_TRUE(b.ok()) << b.status().message();
  KernelConfig bf = *b;
  bf.batch_invariant = true;
  ThreadPool pool(2);
  const std::vector<int> ids = {1, 5, 9, 2, 7, 3, 8};
  for (DType t : {DType::kF16, DType::kF32}) {
    for (bool moe : {false, true}) {
      LlamaConfig c = test::tiny_config(96, 64, 2, 4, 2, 160, !moe);
      Model src = moe ? random_moe(c, 3, 0.6, 0.2, t, 5, pool) : random_model(c, t, 5, pool);
      const std::string path = test::temp_dir("bf16model") + "/m.gguf";
      ASSERT_TRUE(write_gguf_model(src, nullptr, path, std::nullopt).ok());
      auto loaded = load_model(path);
      ASSERT_TRUE(loaded.ok()) << loaded.status().message();
      Model& m = *loaded->model;
      const std::vector<float> before = test::batch_then_last_logits(m, cfg, ids, pool);
      const DType embd = m.weights.tok_embd.dtype;
      auto r = bf16_weights(m, /*skip_routed_experts=*/false, pool);
      ASSERT_TRUE(r.ok()) << r.status().message();
      const int64_t per_layer = 7 + (moe ? 3 * 3 : 0);
      EXPECT_EQ(r->matrices, 2 * per_layer + 1) << dtype_name(t) << " moe " << moe;
      EXPECT_EQ(r->bytes_from, t == DType::kF32 ? 2 * r->bytes : r->bytes);
      EXPECT_EQ(m.weights.layers[1].w_down.dtype, DType::kBF16);
      EXPECT_EQ(m.weights.output.dtype, DType::kBF16);
      EXPECT_EQ(m.weights.tok_embd.dtype, embd);  // lookups keep the file's precision
      if (moe) {
        EXPECT_EQ(m.weights.layers[0].experts[2].up.dtype, DType::kBF16);
      }
      const std::vector<float> after = test::batch_then_last_logits(m, bf, ids, pool);
      ASSERT_EQ(after.size(), before.size());
      double err = 0, mag = 0;
      for (size_t i = 0; i < after.size(); ++i) {
        err = std::max<double>(err, std::fabs(after[i] - before[i]));
        mag = std::max<double>(mag, std::fabs(before[i]));
      }
      EXPECT_GT(err, 0) << "bf16 products left every logit unchanged";
      EXPECT_LT(err, 0.05 * mag) << dtype_name(t) << " moe " << moe;
      const size_t V = m.config.n_output(), n = ids.size();
      EXPECT_TRUE(std::equal(after.end() - V, after.end(), after.begin() + (n - 1) * V))
          << "batch-variant: " << dtype_name(t) << " moe " << moe;
      auto again = bf16_weights(m, false, pool);  // converting twice changes nothing
      ASSERT_TRUE(again.ok());
      EXPECT_EQ(again->matrices, 0);
    }
  }
}

}  // namespace
}  // namespace rme
