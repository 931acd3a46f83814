// tests/tokenizer: the hand-written GPT-2 / Llama-3 splitters on cases worked out from the regexes.
#include "tokenizer/pretokenize.h"

#include <gtest/gtest.h>

namespace rme {
namespace {

std::vector<std::string> split(const std::string& s, PreTokenizer k) {
  std::vector<std::string> out;
  for (auto v : pretokenize(s, k)) out.emplace_back(v);
  return out;
}

TEST(PretokenizeTest, Llama3) {
  EXPECT_EQ(split("Hello world 12345 don't  stop!\n\nOK", PreTokenizer::kLlama3),
            (std::vector<std::string>{"Hello", " world", " ", "123", "45", " don", "'t", " ",
                                      " stop", "!\n\n", "OK"}));
  EXPECT_EQ(split("I'M (here)", PreTokenizer::kLlama3),
            (std::vector<std::string>{"I", "'M", " (", "here", ")"}));
}

TEST(PretokenizeTest, Gpt2) {
  EXPECT_EQ(split("Hello world 12345 don't  stop!\n\nOK", PreTokenizer::kGpt2),
            (std::vector<std::string>{"Hello", " world", " 12345", " don", "'t", " ", " stop", "!",
                                      "\n", "\n", "OK"}));
}

TEST(PretokenizeTest, Qwen2SplitsDigitsOneByOne) {
  EXPECT_EQ(split("x 2024", PreTokenizer::kQwen2),
            (std::vector<std::string>{"x", " ", "2", "0", "2", "4"}));
}

// SmolLM (llama.cpp's "smollm", HF Digits(individual) + ByteLevel): every digit alone first, then
// GPT-2's expression within the text between, so " 12" keeps no space on the digits.
TEST(PretokenizeTest, SmolLMSplitsDigitsFirstThenAsGpt2) {
  EXPECT_EQ(
      split("abc 123 def45x don't", PreTokenizer::kSmolLM),
      (std::vector<std::string>{"abc", " ", "1", "2", "3", " def", "4", "5", "x", " don", "'t"}));
  EXPECT_EQ(split("7", PreTokenizer::kSmolLM), (std::vector<std::string>{"7"}));
  EXPECT_TRUE(split("", PreTokenizer::kSmolLM).empty());
}

TEST(PretokenizeTest, LosslessOnUnicode) {
  const std::string s =
      "Ünïcödé 日本語のテキスト — «quotes» 🦙🦙  \t tabs\r\nend";
  for (auto k :
       {PreTokenizer::kGpt2, PreTokenizer::kLlama3, PreTokenizer::kQwen2, PreTokenizer::kSmolLM}) {
    std::string joined;
    for (auto& p : split(s, k)) joined += p;
    EXPECT_EQ(joined, s);
  }
}

TEST(PretokenizeTest, ByteMapIsABijection) {
  for (int b = 0; b < 256; ++b) {
    const std::string& u = byte_to_unicode(static_cast<uint8_t>(b));
    size_t i = 0;
    uint32_t cp = 0;
    for (unsigned char c : u) cp = (i++ == 0) ? (c < 0x80 ? c : c & 0x1f) : (cp << 6) | (c & 0x3f);
    EXPECT_EQ(unicode_to_byte(cp), b);
  }
  EXPECT_EQ(byte_to_unicode(' '), "\xC4\xA0");  // 'Ġ'
}

}  // namespace
}  // namespace rme
