// tests/formats: vocabularies survive GGUF and tokenizer.json writing — the same text gives the
// same ids before and after, for SentencePiece-style and byte-level vocabularies — and HF special
// token files are applied.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/model_io.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/pretokenize.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

using json = nlohmann::json;
const std::string kRoot = RME_SOURCE_DIR;
const std::vector<std::string> kTexts = {"Once upon a time, Lily saw a big red ball.",
                                         " two  spaces ", "Ünïcödé 🦙\nnew line", "",
                                         "digits 12345"};

void write(const std::string& p, const std::string& s) { std::ofstream(p) << s; }

// Writes `model` + `tok` as GGUF and as an HF directory, reloads both, compares encodings.
void expect_vocab_survives(const LoadedModel& src, const std::string& name) {
  const std::string dir = test::temp_dir("vocab_" + name);
  ASSERT_TRUE(
      write_gguf_model(*src.model, src.tokenizer.get(), dir + "/m.gguf", std::nullopt).ok());
  ASSERT_TRUE(write_hf_model(*src.model, src.tokenizer.get(), dir + "/hf", std::nullopt).ok());
  for (const std::string& path : {dir + "/m.gguf", dir + "/hf"}) {
    auto back = load_model(path);
    ASSERT_TRUE(back.ok()) << back.status().message();
    ASSERT_TRUE(back->tokenizer) << path;
    EXPECT_EQ(back->tokenizer->n_vocab(), src.tokenizer->n_vocab());
    EXPECT_EQ(back->tokenizer->special().bos, src.tokenizer->special().bos) << path;
    EXPECT_EQ(back->tokenizer->special().eos, src.tokenizer->special().eos) << path;
    for (const auto& t : kTexts) {
      auto a = src.tokenizer->encode(t, true), b = back->tokenizer->encode(t, true);
      EXPECT_EQ(a, b) << path << ": " << t;
      EXPECT_EQ(back->tokenizer->decode(b), src.tokenizer->decode(a)) << path;
    }
  }
}

TEST(VocabTest, Llama2cVocabularySurvivesGgufAndHf) {
  LoadOptions o;
  o.tokenizer_path = kRoot + "/data/models/tok512.bin";
  auto lm = load_model(kRoot + "/data/models/stories260K.bin", o);
  ASSERT_TRUE(lm.ok());
  expect_vocab_survives(*lm, "llama2c");
}

TEST(VocabTest, ByteLevelVocabularySurvivesGgufAndHf) {
  // A model directory with a byte-level tokenizer.json: 256 byte tokens, a few merges, specials.
  auto w = test::random_weights(test::tiny_config(262, 32, 1, 4, 2, 64, true), 1);
  const std::string dir = test::temp_dir("vocab_bl_src");
  test::write_hf_dir(w, dir, DType::kF32);
  json v = json::object();
  int n = 0;
  for (int b = 0; b < 256; ++b) v[byte_to_unicode(static_cast<uint8_t>(b))] = n++;
  for (const char* s : {"he", "ll", "hell", "hello"}) v[s] = n++;
  json j = {
      {"added_tokens",
       {{{"id", 260}, {"content", "<|bos|>"}, {"special", true}},
        {{"id", 261}, {"content", "<|eos|>"}, {"special", true}}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", v}, {"merges", {"h e", "l l", "he ll", "hell o"}}}}};
  write(dir + "/tokenizer.json", j.dump());
  write(dir + "/tokenizer_config.json",
        json{{"bos_token", "<|bos|>"}, {"eos_token", "<|eos|>"}}.dump());
  write(dir + "/generation_config.json", json{{"eos_token_id", {261, 260}}}.dump());
  auto lm = load_model(dir);
  ASSERT_TRUE(lm.ok()) << lm.status().message();
  ASSERT_TRUE(lm->tokenizer);
  EXPECT_EQ(lm->tokenizer->special().bos, 260);
  EXPECT_EQ(lm->tokenizer->special().eos, 261);
  EXPECT_EQ(lm->tokenizer->special().extra_eos, std::vector<int>{260});
  EXPECT_EQ(lm->tokenizer->encode("hello", false).size(), 1u);
  // Written as GGUF from a model whose source is this directory: the embedded vocabulary is used.
  const std::string out = test::temp_dir("vocab_bl_out") + "/m.gguf";
  ASSERT_TRUE(write_gguf_model(*lm->model, lm->tokenizer.get(), out, std::nullopt).ok());
  auto g = load_model(out);
  ASSERT_TRUE(g.ok()) << g.status().message();
  for (const auto& t : kTexts)
    EXPECT_EQ(g->tokenizer->encode(t, true), lm->tokenizer->encode(t, true)) << t;
  EXPECT_EQ(g->tokenizer->special().eos, 261);
}

}  // namespace
}  // namespace rme
