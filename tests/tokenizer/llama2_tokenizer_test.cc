// tests/tokenizer: the Llama-2 SentencePiece model from ../shared (skipped when absent): known ids,
// and rme's own BPE engine (from tokenizer.bin, from the .model's scores, and from a derived
// tokenizer.json) agreeing with libsentencepiece id for id on real text.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/file.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/llama2c_vocab.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

const std::string kShared = std::string(RME_SOURCE_DIR) + "/../shared/data";

class Llama2TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!file_exists(kShared + "/tokenizers/llama2_tokenizer.model"))
      GTEST_SKIP() << "../shared absent";
    auto sp = SentencePieceTokenizer::load(kShared + "/tokenizers/llama2_tokenizer.model");
    ASSERT_TRUE(sp.ok()) << sp.status().message();
    sp_ = std::move(sp).value();
  }
  // Lines of real text from several domains, plus hand-picked edge cases.
  std::vector<std::string> corpus() const {
    std::vector<std::string> out = {"Hello world",
                                    " leading",
                                    "trailing ",
                                    "  two  spaces",
                                    "\n",
                                    "a\nb",
                                    "Ünïcödé café naïve",
                                    "日本語のテキスト",
                                    "🦙 llamas 🦙🦙",
                                    "x\ty",
                                    "it's 3.14159!",
                                    "",
                                    "<s> is not special here"};
    for (const char* f : {"/books/war_and_peace.txt", "/code/llamacpp_cxx_valid.txt",
                          "/encyclopedic/wiki.valid.raw", "/math/gsm8k_test.jsonl"}) {
      std::ifstream in(kShared + f);
      std::string line;
      for (int i = 0; i < 150 && std::getline(in, line); ++i) out.push_back(line);
    }
    return out;
  }
  std::unique_ptr<SentencePieceTokenizer> sp_;
};

TEST_F(Llama2TokenizerTest, KnownIds) {
  EXPECT_EQ(sp_->n_vocab(), 32000);
  EXPECT_EQ(sp_->encode("Hello world", true), (std::vector<int>{1, 15043, 3186}));
  EXPECT_EQ(sp_->encode("\n", false), (std::vector<int>{29871, 13}));  // "▁" + byte <0x0A>
  EXPECT_EQ(sp_->encode(" Hello", false),
            (std::vector<int>{29871, 15043}));  // leading space: "▁" "▁Hello"
  // Byte fallback: the llama emoji is not in the vocabulary, so its 4 UTF-8 bytes are ids byte+3.
  EXPECT_EQ(sp_->encode("🦙", false),
            (std::vector<int>{29871, 0xF0 + 3, 0x9F + 3, 0xA6 + 3, 0x99 + 3}));
  EXPECT_EQ(sp_->decode(sp_->encode("Hello world 🦙", true)), "Hello world 🦙");
}

TEST_F(Llama2TokenizerTest, ScoreBpeMatchesSentencePiece) {
  auto bpe = BpeTokenizer::create(sp_->export_vocab());
  ASSERT_TRUE(bpe.ok()) << bpe.status().message();
  for (const auto& s : corpus()) {
    ASSERT_EQ((*bpe)->encode(s, true), sp_->encode(s, true)) << "text: " << s;
    EXPECT_EQ((*bpe)->decode((*bpe)->encode(s, true)), s);
  }
}

TEST_F(Llama2TokenizerTest, Llama2cTokenizerBinMatchesSentencePiece) {
  auto v = read_llama2c_vocab(kShared + "/tokenizers/llama2_tokenizer.bin", 32000);
  ASSERT_TRUE(v.ok()) << v.status().message();
  auto bpe = BpeTokenizer::create(std::move(v).value());
  ASSERT_TRUE(bpe.ok());
  for (const auto& s : corpus())
    ASSERT_EQ((*bpe)->encode(s, true), sp_->encode(s, true)) << "text: " << s;
}

TEST_F(Llama2TokenizerTest, DerivedTokenizerJsonMatchesSentencePiece) {
  const std::string dir = test::temp_dir("llama2_tokjson");
  ASSERT_TRUE(write_tokenizer_json(sp_->export_vocab(), dir + "/tokenizer.json").ok());
  auto tok = load_hf_tokenizer(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  for (const auto& s : corpus())
    ASSERT_EQ((*tok)->encode(s, true), sp_->encode(s, true)) << "text: " << s;
}

// encode_at_most is encode below the limit and nullopt above it, exactly at the boundary, for
// both engines; a megabyte of text is refused without being tokenized whole.
TEST_F(Llama2TokenizerTest, BoundedEncodingIsExactAtTheLimit) {
  auto bpe = BpeTokenizer::create(sp_->export_vocab());
  ASSERT_TRUE(bpe.ok());
  std::string all;
  for (const auto& s : corpus()) all += s + "\n";
  std::vector<std::string> texts = corpus();
  texts.push_back(all);
  for (const Tokenizer* t :
       {static_cast<const Tokenizer*>(sp_.get()), static_cast<const Tokenizer*>(bpe->get())}) {
    EXPECT_GE(t->max_token_bytes(), 16u);
    for (const auto& s : texts) {
      const std::vector<int> ids = t->encode(s, true);
      EXPECT_EQ(t->encode_at_most(s, true, ids.size()), ids) << s;
      EXPECT_EQ(t->encode_at_most(s, true, ids.size() - 1), std::nullopt) << s;
    }
    EXPECT_EQ(t->encode_at_most(std::string(1 << 20, 'a'), true, 2048), std::nullopt);
  }
}

}  // namespace
}  // namespace rme
