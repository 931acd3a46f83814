// tests/model: conversions keep logits — safetensors -> GGUF -> safetensors is exact, and GGUF
// quantization by `convert` equals the oracle on the quantized weights.
#include <gtest/gtest.h>

#include <cmath>

#include "core/thread_pool.h"
#include "formats/model_io.h"
#include "kernels/dot_q8.h"
#include "model/forward.h"
#include "util/tiny_model.h"
#include "util/torch_oracle.h"

namespace rme {
namespace {

std::vector<float> logits_of(const LoadedModel& lm, const std::vector<int>& ids, bool int8 = true) {
  const Model& m = *lm.model;
  KvCache kv(m, static_cast<int>(ids.size()));
  KernelConfig kernels = KernelConfig::best();
  kernels.int8 = int8;
  Forward fwd(m, 16, ThreadPool::global(), kernels);
  std::vector<float> out(ids.size() * m.config.n_vocab);
  EXPECT_TRUE(fwd.run(ids, 0, kv, out.data(), true).ok());
  return out;
}

const std::vector<int> kIds = {1, 5, 9, 2, 33, 40, 7, 7, 12, 60, 3, 0, 18};

TEST(ConvertTest, SafetensorsToGgufToSafetensorsKeepsLogitsExactly) {
  for (int variant = 0; variant < 3; ++variant) {
    const bool tied = variant == 1, qwen2 = variant == 2;  // qwen2: q/k/v biases
    LlamaConfig cfg = test::tiny_config(67, 64, 2, 4, 2, 96, tied);
    cfg.attn_bias = qwen2;
    auto w = test::random_weights(cfg, 7);
    const std::string dir = test::temp_dir("conv_" + std::to_string(variant));
    test::write_hf_dir(w, dir + "/a", DType::kF32);
    auto a = load_model(dir + "/a");
    ASSERT_TRUE(a.ok()) << a.status().message();
    ASSERT_TRUE(
        write_gguf_model(*a->model, a->tokenizer.get(), dir + "/b.gguf", std::nullopt).ok());
    auto b = load_model(dir + "/b.gguf");
    ASSERT_TRUE(b.ok()) << b.status().message();
    ASSERT_TRUE(write_hf_model(*b->model, b->tokenizer.get(), dir + "/c", std::nullopt).ok());
    auto c = load_model(dir + "/c");
    ASSERT_TRUE(c.ok()) << c.status().message();
    auto la = logits_of(*a, kIds), lb = logits_of(*b, kIds), lc = logits_of(*c, kIds);
    EXPECT_EQ(la, lc) << "safetensors -> gguf -> safetensors changed logits";
    // GGUF holds Q/K in the interleaved layout; RoPE pairs differ but the math is the same.
    float d = 0;
    for (size_t i = 0; i < la.size(); ++i) d = std::max(d, std::fabs(la[i] - lb[i]));
    EXPECT_LE(d, 1e-5f);
    EXPECT_EQ(b->model->config.tied_output, tied);
    EXPECT_EQ(b->model->config.attn_bias, qwen2);
    EXPECT_EQ(c->model->config.attn_bias, qwen2);
    // Written in f16 (biases included: they once kept their f32 bytes under an f16 header).
    ASSERT_TRUE(write_hf_model(*a->model, a->tokenizer.get(), dir + "/h", DType::kF16).ok());
    auto h = load_model(dir + "/h");
    ASSERT_TRUE(h.ok()) << h.status().message();
    const auto lh = logits_of(*h, kIds);
    float dh = 0;
    for (size_t i = 0; i < la.size(); ++i) dh = std::max(dh, std::fabs(la[i] - lh[i]));
    EXPECT_LE(dh, 0.05f) << "f16 copy, variant " << variant;
  }
}

TEST(ConvertTest, QuantizingConvertMatchesOracleOnQuantizedWeights) {
  auto w = test::random_weights(test::tiny_config(67, 64, 2, 4, 2, 96, false), 11);
  const std::string dir = test::temp_dir("conv_quant");
  test::write_hf_dir(w, dir + "/a", DType::kF32);
  auto a = load_model(dir + "/a");
  ASSERT_TRUE(a.ok());
  for (DType t : {DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    const std::string out = dir + "/q_" + std::string(dtype_name(t)) + ".gguf";
    ASSERT_TRUE(write_gguf_model(*a->model, nullptr, out, t).ok());
    auto q = load_model(out);
    ASSERT_TRUE(q.ok()) << q.status().message();
    // f32 activations: the oracle's math exactly (int8 activations are checked in oracle_test).
    auto got = logits_of(*q, kIds, /*int8=*/false);
    auto want = test::oracle_logits(test::round_through(w, t), kIds);
    float d = 0;
    for (size_t i = 0; i < got.size(); ++i) d = std::max(d, std::fabs(got[i] - want[i]));
    EXPECT_LE(d, 1e-4f) << dtype_name(t);
  }
}

// K-quant mixes through rme's writer: each matrix gets the mix's type (rows too short for 256 fall
// back to Q8_0), and the engine on the file equals the oracle on the weights the file holds.
TEST(ConvertTest, KQuantMixWritesEachMatrixItsTypeAndMatchesTheOracle) {
  auto w = test::random_weights(test::tiny_config(67, 256, 2, 4, 2, 288, false), 12);
  const std::string dir = test::temp_dir("conv_kquant");
  test::write_hf_dir(w, dir + "/a", DType::kF32);
  auto a = load_model(dir + "/a");
  ASSERT_TRUE(a.ok());
  for (const char* mix : {"q4_k_m", "q5_k_m", "q6_k"}) {
    const std::string out = dir + "/" + mix + ".gguf";
    auto choice = TypeChoice::parse(mix);
    ASSERT_TRUE(choice.ok());
    ASSERT_TRUE(write_gguf_model(*a->model, nullptr, out, *choice).ok());
    auto q = load_model(out);
    ASSERT_TRUE(q.ok()) << q.status().message();
    const LayerWeights& L = q->model->weights.layers[1];
    const DType base = *choice->base;
    EXPECT_EQ(L.w_gate.dtype, base) << mix;
    EXPECT_EQ(L.wv.dtype, choice->medium ? DType::kQ6_K : base) << mix;
    EXPECT_EQ(L.w_down.dtype, DType::kQ8_0) << mix << ": 288 is not a multiple of 256";
    EXPECT_EQ(q->model->weights.output.dtype, DType::kQ6_K) << mix;
    auto got = logits_of(*q, kIds, /*int8=*/false);
    auto want = test::oracle_logits(test::read_gguf_weights(out, q->model->config), kIds);
    float d = 0;
    for (size_t i = 0; i < got.size(); ++i) d = std::max(d, std::fabs(got[i] - want[i]));
    EXPECT_LE(d, 1e-4f) << mix;
  }
}

TEST(ConvertTest, Llama3RopeScalingSurvivesGguf) {
  LlamaConfig c = test::tiny_config(71, 32, 2, 4, 2, 48, false);
  c.rope_scaling.type = RopeScaling::Type::kLlama3;
  c.rope_scaling.factor = 8;
  c.rope_scaling.original_max_position = 16;
  auto w = test::random_weights(c, 5);
  const std::string dir = test::temp_dir("conv_llama3");
  test::write_hf_dir(w, dir + "/a", DType::kF32);
  auto a = load_model(dir + "/a");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(write_gguf_model(*a->model, nullptr, dir + "/b.gguf", std::nullopt).ok());
  auto b = load_model(dir + "/b.gguf");
  ASSERT_TRUE(b.ok()) << b.status().message();
  std::vector<int> ids(40);
  for (int i = 0; i < 40; ++i) ids[i] = (i * 7) % 71;
  auto want = test::oracle_logits(w, ids);
  auto got = logits_of(*b, ids);
  float d = 0;
  for (size_t i = 0; i < got.size(); ++i) d = std::max(d, std::fabs(got[i] - want[i]));
  EXPECT_LE(d, 1e-4f);
}

}  // namespace
}  // namespace rme
