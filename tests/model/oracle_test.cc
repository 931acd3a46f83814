// tests/model: engine logits vs the libtorch oracle for tiny random models in every format.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "formats/model_io.h"
#include "kernels/dot_q8.h"
#include "util/tiny_model.h"
#include "util/torch_oracle.h"

namespace rme {
namespace {

using test::HfWeights;

// Documented tolerance: every format, quantized ones included, is compared with the oracle run
// on exactly the weights the file holds (dequantized), so only f32-vs-f64 arithmetic differs.
constexpr float kTol = 1e-4f;

std::vector<int> random_ids(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> ids(n);
  for (auto& id : ids) id = static_cast<int>(rng() % vocab);
  return ids;
}

// The engine's logits for the model at path (see test::engine_logits).
std::vector<float> engine_logits(const std::string& path, const std::vector<int>& ids,
                                 int max_tokens, bool int8) {
  auto loaded = load_model(path);
  EXPECT_TRUE(loaded.ok()) << loaded.status().message();
  if (!loaded.ok()) return {};
  return test::engine_logits(*loaded->model, ids, max_tokens, int8);
}

using test::max_abs_diff;

struct Case {
  std::string name;
  std::string format;  // hf, gguf, llama2c
  DType dtype;
  LlamaConfig config;
  int shards_or_version = 1;
};

class OracleTest : public ::testing::TestWithParam<Case> {};

TEST_P(OracleTest, LogitsMatchAtEveryPosition) {
  const Case& c = GetParam();
  HfWeights w = test::random_weights(c.config, 1234);
  const std::string dir = test::temp_dir("oracle_" + c.name);
  std::string path;
  if (c.format == "hf") {
    path = dir + "/model";
    test::write_hf_dir(w, path, c.dtype, c.shards_or_version);
  } else if (c.format == "gguf") {
    path = dir + "/model.gguf";
    test::write_gguf(w, path, c.dtype);
  } else {
    path = dir + "/model.bin";
    test::write_llama2c(w, path, c.shards_or_version);
  }
  const std::vector<int> ids = random_ids(29, c.config.n_vocab, 99);
  const std::vector<float> want =
      test::oracle_logits(test::round_through(w, c.dtype, c.format == "hf"), ids);
  // Chunks of 8 tokens exercise both the batched (prefill) and the cached path. With f32
  // activations the engine does the oracle's math; int8 activations are checked below.
  const std::vector<float> got = engine_logits(path, ids, 8, /*int8=*/false);
  EXPECT_LE(max_abs_diff(got, want), kTol) << c.name;
  // One token at a time (decode path) must agree too.
  // Token by token with f32 activations: the same math as the oracle.
  const std::vector<float> got1 = engine_logits(path, ids, 1, /*int8=*/false);
  EXPECT_LE(max_abs_diff(got1, want), kTol) << c.name << " (token by token)";
  // With 8-bit activations (quantized weights on VNNI CPUs) decode is an approximation: within
  // 2% of the largest logit.
  const std::vector<float> got8 = engine_logits(path, ids, 1, true);
  const std::vector<float> got8p = engine_logits(path, ids, 8, true);  // integer prefill
  float scale = 1;
  for (float v : want) scale = std::max(scale, std::fabs(v));
  EXPECT_LE(max_abs_diff(got8, want), 0.02f * scale) << c.name << " (int8 activations)";
  EXPECT_LE(max_abs_diff(got8p, want), 0.02f * scale) << c.name << " (int8 prefill)";
}

LlamaConfig gqa_untied() { return test::tiny_config(97, 40, 2, 5, 1, 71, false); }
LlamaConfig gqa_tied() { return test::tiny_config(83, 32, 2, 4, 2, 50, true); }
LlamaConfig quant_untied() { return test::tiny_config(67, 64, 2, 4, 2, 96, false); }
LlamaConfig quant_tied_odd_ff() { return test::tiny_config(61, 64, 2, 8, 2, 80, true); }
LlamaConfig qwen2(bool tied) {  // q/k/v biases, rotate-half RoPE in every format
  LlamaConfig c = test::tiny_config(73, 64, 2, 4, 2, 96, tied);
  c.attn_bias = true;
  c.rope_theta = 1000000;
  return c;
}
// K-quants need rows of 256: n_ff 320 leaves down_proj to the Q8_0 fallback.
LlamaConfig kquant_untied() { return test::tiny_config(67, 256, 2, 4, 2, 512, false); }
LlamaConfig kquant_tied_odd_ff() { return test::tiny_config(61, 256, 1, 4, 2, 320, true); }
// Mistral: a window of 5 positions, well inside the 29 tokens checked.
LlamaConfig mistral_window() {
  LlamaConfig c = test::tiny_config(59, 32, 2, 4, 2, 64, false);
  c.sliding_window = 5;
  return c;
}
LlamaConfig mha() { return test::tiny_config(50, 24, 3, 3, 3, 37, false); }
LlamaConfig llama3_scaled() {
  LlamaConfig c = test::tiny_config(71, 32, 2, 4, 2, 48, false);
  c.rope_scaling.type = RopeScaling::Type::kLlama3;
  c.rope_scaling.factor = 8;
  c.rope_scaling.low_freq_factor = 1;
  c.rope_scaling.high_freq_factor = 4;
  c.rope_scaling.original_max_position = 16;
  c.rope_theta = 500000;
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    Formats, OracleTest,
    ::testing::Values(Case{"hf_f32_gqa_untied", "hf", DType::kF32, gqa_untied()},
                      Case{"hf_f32_tied_sharded", "hf", DType::kF32, gqa_tied(), 3},
                      Case{"hf_bf16_gqa_untied", "hf", DType::kBF16, gqa_untied()},
                      Case{"hf_f16_tied", "hf", DType::kF16, gqa_tied(), 2},
                      Case{"hf_f32_llama3_rope", "hf", DType::kF32, llama3_scaled()},
                      Case{"gguf_f32_gqa_untied", "gguf", DType::kF32, gqa_untied()},
                      Case{"gguf_f32_mha", "gguf", DType::kF32, mha()},
                      Case{"gguf_f16_tied", "gguf", DType::kF16, gqa_tied()},
                      Case{"gguf_bf16_untied", "gguf", DType::kBF16, gqa_untied()},
                      Case{"gguf_q8_0_untied", "gguf", DType::kQ8_0, quant_untied()},
                      Case{"gguf_q4_0_untied", "gguf", DType::kQ4_0, quant_untied()},
                      Case{"gguf_q8_0_tied", "gguf", DType::kQ8_0, quant_tied_odd_ff()},
                      Case{"gguf_q4_0_tied", "gguf", DType::kQ4_0, quant_tied_odd_ff()},
                      Case{"gguf_q4_k_untied", "gguf", DType::kQ4_K, kquant_untied()},
                      Case{"gguf_q5_k_untied", "gguf", DType::kQ5_K, kquant_untied()},
                      Case{"gguf_q6_k_tied_odd_ff", "gguf", DType::kQ6_K, kquant_tied_odd_ff()},
                      Case{"hf_f32_mistral_window", "hf", DType::kF32, mistral_window()},
                      Case{"gguf_f16_mistral_window", "gguf", DType::kF16, mistral_window()},
                      Case{"gguf_f32_qwen2", "gguf", DType::kF32, qwen2(false)},
                      Case{"gguf_q8_0_qwen2_tied", "gguf", DType::kQ8_0, qwen2(true)},
                      Case{"hf_bf16_qwen2", "hf", DType::kBF16, qwen2(false)},
                      Case{"hf_f32_qwen2_tied", "hf", DType::kF32, qwen2(true), 2},
                      Case{"llama2c_v0_tied", "llama2c", DType::kF32, gqa_tied(), 0},
                      Case{"llama2c_v0_untied", "llama2c", DType::kF32, gqa_untied(), 0},
                      Case{"llama2c_v1_untied", "llama2c", DType::kF32, mha(), 1}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace rme
