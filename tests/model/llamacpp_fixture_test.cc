// tests/model: GGUF files written by llama.cpp's own tools (tests/data/gguf; provenance and the
// commands in its README.md) load and match the libtorch oracle, so a misreading shared by rme's
// GGUF reader and writer cannot hide behind their round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "formats/gguf.h"
#include "formats/model_io.h"
#include "formats/tensor_names.h"
#include "tensor/quant.h"
#include "util/tiny_model.h"
#include "util/torch_oracle.h"

namespace rme {
namespace {

const std::string kDir = std::string(RME_SOURCE_DIR) + "/tests/data/gguf/";

using test::engine_logits;
using test::max_abs_diff;

class LlamaCppFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaCppFixture, LoadsAndMatchesTheOracleOnTheWeightsItHolds) {
  const std::string path = kDir + GetParam();
  auto lm = load_model(path);
  ASSERT_TRUE(lm.ok()) << lm.status().message();
  const Model& m = *lm->model;
  ASSERT_TRUE(lm->tokenizer != nullptr);
  // llama.cpp's converter writes 0xFFFFFFFF for the padding token the model does not have.
  EXPECT_EQ(lm->tokenizer->special().pad, -1);
  EXPECT_EQ(lm->tokenizer->special().bos, 1);
  EXPECT_EQ(lm->tokenizer->special().eos, 2);
  std::mt19937 rng(7);
  std::vector<int> ids(29);
  for (int& id : ids) id = static_cast<int>(rng() % m.config.n_vocab);
  const std::vector<float> want = test::oracle_logits(test::read_gguf_weights(path, m.config), ids);
  EXPECT_LE(max_abs_diff(engine_logits(m, ids, 8), want), 1e-4f) << "chunks of 8";
  EXPECT_LE(max_abs_diff(engine_logits(m, ids, 1), want), 1e-4f) << "token by token";
  // Int8 activations (the integer kernels, K-quants' included): within 2% of the largest logit.
  float scale = 1;
  for (float v : want) scale = std::max(scale, std::fabs(v));
  EXPECT_LE(max_abs_diff(engine_logits(m, ids, 8, true), want), 0.02f * scale) << "int8 chunks";
  EXPECT_LE(max_abs_diff(engine_logits(m, ids, 1, true), want), 0.02f * scale) << "int8 decode";
}

INSTANTIATE_TEST_SUITE_P(Files, LlamaCppFixture,
                         ::testing::Values("stories260K-f16.gguf", "random-q8_0.gguf",
                                           "random-q4_0.gguf",
                                           "random-q8_0-split-00002-of-00002.gguf", "k-q4_k_m.gguf",
                                           "k-q5_k_m.gguf"),
                         [](const auto& info) {
                           std::string n = info.param.substr(0, info.param.find(".gguf"));
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// The container itself read right: the f16 file llama.cpp made of stories260K.bin holds the
// llama2.c floats (read here with no rme code) to f16 precision, tensor by tensor.
TEST(LlamaCppFixtureTest, Stories260KF16HoldsTheLlama2cWeights) {
  std::ifstream in(std::string(RME_SOURCE_DIR) + "/data/models/stories260K.bin", std::ios::binary);
  int32_t h[7];
  in.read(reinterpret_cast<char*>(h), sizeof h);
  ASSERT_TRUE(in.good());
  const int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4], vocab = h[5];
  const int kv_dim = dim / heads * kv_heads;
  auto floats = [&](size_t n) {
    std::vector<float> v(n);
    in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(float)));
    return v;
  };
  // llama2.c's order: embedding, then each kind of tensor for all layers at once.
  struct Part {
    const char* name;  // GGUF name, %d = layer
    size_t per_layer;
    bool layered;
  };
  const Part parts[] = {{"token_embd.weight", size_t(vocab) * dim, false},
                        {"blk.%d.attn_norm.weight", size_t(dim), true},
                        {"blk.%d.attn_q.weight", size_t(dim) * dim, true},
                        {"blk.%d.attn_k.weight", size_t(kv_dim) * dim, true},
                        {"blk.%d.attn_v.weight", size_t(kv_dim) * dim, true},
                        {"blk.%d.attn_output.weight", size_t(dim) * dim, true},
                        {"blk.%d.ffn_norm.weight", size_t(dim), true},
                        {"blk.%d.ffn_gate.weight", size_t(hidden) * dim, true},
                        {"blk.%d.ffn_down.weight", size_t(dim) * hidden, true},
                        {"blk.%d.ffn_up.weight", size_t(hidden) * dim, true},
                        {"output_norm.weight", size_t(dim), false}};
  auto g = GgufFile::open(kDir + "stories260K-f16.gguf");
  ASSERT_TRUE(g.ok()) << g.status().message();
  int checked = 0;
  for (const Part& p : parts)
    for (int l = 0; l < (p.layered ? layers : 1); ++l) {
      char name[64];
      std::snprintf(name, sizeof name, p.name, l);
      const std::vector<float> want = floats(p.per_layer);
      const GgufTensorInfo* t = (*g)->find_tensor(name);
      ASSERT_NE(t, nullptr) << name;
      ASSERT_EQ(static_cast<size_t>(t->view.n_elements()), want.size()) << name;
      std::vector<float> got(want.size());
      dequantize_row(t->dtype, t->view.data, got.data(), static_cast<int64_t>(got.size()));
      for (size_t i = 0; i < want.size(); ++i)
        ASSERT_NEAR(got[i], want[i], std::fabs(want[i]) * 1e-3f + 1e-7f) << name << "[" << i << "]";
      ++checked;
    }
  EXPECT_EQ(checked, 2 + 9 * layers);
}

// K-quants: every tensor of the Q4_K_M and Q5_K_M files (Q4_K/Q5_K with some Q6_K, as llama.cpp
// mixes them) read back close to the Q8_0 file llama.cpp made of the same weights: relative RMS
// error within each type's quantization noise (a misread layout gives errors near 100%). Measured
// once against the f32 original: Q4_K 7.2%, Q5_K 3.6%, Q6_K 1.9% (with the Q8_0 conversion).
TEST(LlamaCppFixtureTest, KQuantFilesHoldTheWeightsLlamaCppQuantized) {
  auto ref = GgufFile::open(kDir + "k-q8_0.gguf");
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  for (const char* name : {"k-q4_k_m.gguf", "k-q5_k_m.gguf"}) {
    auto g = GgufFile::open(kDir + name);
    ASSERT_TRUE(g.ok()) << g.status().message();
    std::map<std::string, int> kinds;
    for (const GgufTensorInfo& t : (*g)->tensors()) {
      const GgufTensorInfo* r = (*ref)->find_tensor(t.name);
      ASSERT_NE(r, nullptr) << t.name;
      const int64_t n = t.view.n_elements();
      ASSERT_EQ(n, r->view.n_elements());
      std::vector<float> a(n), b(n);
      dequantize_row(t.dtype, t.view.data, a.data(), n);
      dequantize_row(r->dtype, r->view.data, b.data(), n);
      double err = 0, norm = 0;
      for (int64_t i = 0; i < n; ++i) {
        err += (a[i] - b[i]) * double(a[i] - b[i]);
        norm += b[i] * double(b[i]);
      }
      const double rel = std::sqrt(err / norm);
      const std::string kind =
          dtype_is_kquant(t.dtype) ? std::string(dtype_name(t.dtype)) : "other";
      ++kinds[kind];
      const double bound = kind == "q4_k"   ? 0.12
                           : kind == "q5_k" ? 0.06
                           : kind == "q6_k" ? 0.03
                                            : 0.01;
      EXPECT_LT(rel, bound) << name << " " << t.name << " (" << kind << ")";
    }
    EXPECT_GT(kinds["q6_k"], 0) << name;
    EXPECT_GT(kinds[std::string(name) == "k-q4_k_m.gguf" ? "q4_k" : "q5_k"], 0) << name;
  }
}

// rme's q4_k_m / q5_k_m pick, matrix by matrix, the types llama.cpp's quantizer gave the same
// model's matrices (the fixtures above).
TEST(LlamaCppFixtureTest, KQuantMixesPickTheTypesLlamaCppPicks) {
  for (const char* name : {"k-q4_k_m.gguf", "k-q5_k_m.gguf"}) {
    auto g = GgufFile::open(kDir + name);
    ASSERT_TRUE(g.ok()) << g.status().message();
    auto lm = load_model(kDir + name);
    ASSERT_TRUE(lm.ok());
    const LlamaConfig& c = lm->model->config;
    auto mix = TypeChoice::parse(std::string(name).substr(2, 6));
    ASSERT_TRUE(mix.ok());
    int checked = 0;
    for (const WeightId& id : all_weight_ids(c.n_layer, !c.tied_output, false)) {
      if (is_vector(id)) continue;
      const GgufTensorInfo* t = (*g)->find_tensor(tensor_name(id, NameScheme::kGguf));
      ASSERT_NE(t, nullptr) << tensor_name(id, NameScheme::kGguf);
      const DType want = dtype_for_row(mix->pick(id, c.n_layer, DType::kF32), t->ne[0]);
      EXPECT_EQ(dtype_name(t->dtype), dtype_name(want)) << name << " " << t->name;
      ++checked;
    }
    EXPECT_EQ(checked, 9);  // one layer: the fixtures are tiny
  }
  // 22 layers (tinyllama): llama-quantize Q4_K_M gave attn_v and ffn_down Q6_K in exactly these
  // layers (read from its tinyllama-shape file with gguf-py; docs/formats.md).
  auto parsed = TypeChoice::parse("q4_k_m");
  ASSERT_TRUE(parsed.ok());
  const TypeChoice mix = *parsed;
  std::vector<int> q6;
  for (int l = 0; l < 22; ++l)
    if (mix.pick({WeightId::Kind::kWv, l}, 22, DType::kF16) == DType::kQ6_K) q6.push_back(l);
  EXPECT_EQ(q6, (std::vector<int>{0, 1, 4, 7, 10, 13, 16, 19, 20, 21}));
  EXPECT_EQ(mix.pick({WeightId::Kind::kDown, 4}, 22, DType::kF16), DType::kQ6_K);
  EXPECT_EQ(mix.pick({WeightId::Kind::kExpDown, 4, 2}, 22, DType::kF16), DType::kQ6_K);
  EXPECT_EQ(mix.pick({WeightId::Kind::kGate, 4}, 22, DType::kF16), DType::kQ4_K);
  EXPECT_EQ(mix.pick({WeightId::Kind::kTokEmbd}, 22, DType::kF16), DType::kQ4_K);
  EXPECT_EQ(mix.pick({WeightId::Kind::kOutput}, 22, DType::kF16), DType::kQ6_K);
}

// Qwen2 as llama.cpp's gguf-py writes it: architecture "qwen2" (q/k/v biases, rotate-half RoPE),
// a byte-level vocabulary with tokenizer.ggml.pre = qwen2 and ranked merges.
TEST(LlamaCppFixtureTest, Qwen2FromGgufPyMatchesTheOracle) {
  const std::string path = kDir + "qwen2-f16.gguf";
  auto lm = load_model(path);
  ASSERT_TRUE(lm.ok()) << lm.status().message();
  const Model& m = *lm->model;
  EXPECT_TRUE(m.config.attn_bias);
  EXPECT_EQ(m.config.rope_style, RopeStyle::kHalf);
  EXPECT_FALSE(m.config.tied_output);
  ASSERT_TRUE(lm->tokenizer != nullptr);
  const Tokenizer& tok = *lm->tokenizer;
  EXPECT_EQ(tok.kind(), "byte-level-bpe (qwen2 split)");
  EXPECT_EQ(tok.special().eos, 261);
  // Merges "Ġ t", "h e", "Ġt he", "i n", "Ġ a": " the in a" -> Ġthe, Ġ, in, Ġa.
  EXPECT_EQ(tok.encode(" the in a", false), (std::vector<int>{258, 32, 259, 260}));  // as llama.cpp
  std::mt19937 rng(3);
  std::vector<int> ids(23);
  for (int& id : ids) id = static_cast<int>(rng() % m.config.n_vocab);
  const std::vector<float> want = test::oracle_logits(test::read_gguf_weights(path, m.config), ids);
  EXPECT_LE(max_abs_diff(engine_logits(m, ids, 8), want), 1e-4f);
  EXPECT_LE(max_abs_diff(engine_logits(m, ids, 1), want), 1e-4f);
}

TEST(LlamaCppFixtureTest, SplitModelEqualsTheWholeFileAndNeedsEveryShard) {
  auto whole = load_model(kDir + "random-q8_0.gguf");
  auto split = load_model(kDir + "random-q8_0-split-00001-of-00002.gguf");
  ASSERT_TRUE(whole.ok() && split.ok());
  const std::vector<int> ids = {1, 72, 300, 5, 99, 411, 8};
  EXPECT_EQ(engine_logits(*whole->model, ids, 8), engine_logits(*split->model, ids, 8));
  // A shard alone: the error names the missing one.
  const std::string dir = test::temp_dir("split_alone");
  std::filesystem::copy_file(kDir + "random-q8_0-split-00001-of-00002.gguf",
                             dir + "/m-00001-of-00002.gguf");
  auto alone = load_model(dir + "/m-00001-of-00002.gguf");
  ASSERT_FALSE(alone.ok());
  EXPECT_NE(alone.status().message().find("shard 2 of 2"), std::string::npos)
      << alone.status().message();
  // A shard renamed out of the pattern cannot find its siblings: said plainly.
  std::filesystem::copy_file(kDir + "random-q8_0-split-00001-of-00002.gguf", dir + "/m.gguf");
  auto renamed = load_model(dir + "/m.gguf");
  ASSERT_FALSE(renamed.ok());
  EXPECT_NE(renamed.status().message().find("not named"), std::string::npos)
      << renamed.status().message();
}

}  // namespace
}  // namespace rme
