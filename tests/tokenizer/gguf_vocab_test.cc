// tests/tokenizer: a vocabulary rme writes into GGUF tokenizes real text as libsentencepiece does
// with the model's own tokenizer.model — read back by rme, and (recorded in docs/formats.md) by
// llama.cpp, whose "llama" reader merges by the scores alone.
#include <gtest/gtest.h>

#include <fstream>

#include "core/file.h"
#include "core/thread_pool.h"
#include "formats/model_io.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

const std::string kRoot = RME_SOURCE_DIR;

// Every line of the shipped held-out text of all seven domains, plus edge cases.
std::vector<std::string> lines() {
  std::vector<std::string> out = {
      "The loaves were baked",      " leading", "trailing ", "a  b", "\n",
      "Ünïcödé 日本語 🦙", ""};
  for (const char* d : {"books", "code", "dialogue", "math", "qa", "stories", "wiki"}) {
    std::ifstream in(kRoot + "/data/eval/" + d + ".txt");
    for (std::string line; std::getline(in, line);) out.push_back(line);
  }
  return out;
}

TEST(GgufVocabTest, RmeMiniWrittenToGgufTokenizesAsSentencePiece) {
  const std::string mini = kRoot + "/data/models/rme-mini";
  auto sp = SentencePieceTokenizer::load(mini + "/tokenizer.model");
  ASSERT_TRUE(sp.ok()) << sp.status().message();
  auto lm = load_model(mini);  // its tokenizer.json: ranked merges, no scores
  ASSERT_TRUE(lm.ok()) << lm.status().message();
  const std::string path = test::temp_dir("gguf_vocab") + "/mini.gguf";
  ASSERT_TRUE(write_gguf_model(*lm->model, lm->tokenizer.get(), path, std::nullopt).ok());
  auto back = load_model(path);
  ASSERT_TRUE(back.ok()) << back.status().message();
  const Tokenizer& tok = *back->tokenizer;
  EXPECT_EQ(tok.kind(), "sentencepiece-bpe (scores)");
  const auto text = lines();
  ASSERT_GT(text.size(), 1000u);
  int n = 0;
  for (const std::string& s : text) {
    ASSERT_EQ(tok.encode(s, true), (*sp)->encode(s, true)) << "line " << n << ": " << s;
    ++n;
  }
}

}  // namespace
}  // namespace rme
