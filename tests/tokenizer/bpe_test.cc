// tests/tokenizer: a byte-level BPE tokenizer.json built here (a tiny BPE trained in the test),
// loaded through the HF directory loader: merges, special tokens, round trips.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/pretokenize.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

using json = nlohmann::json;

// Trains `n_merges` byte-level BPE merges on text (most frequent adjacent pair within words).
json train_tokenizer_json(const std::string& text, int n_merges) {
  std::vector<std::string> vocab;
  std::map<std::string, int> index;
  auto add = [&](const std::string& s) {
    if (!index.count(s)) {
      index[s] = static_cast<int>(vocab.size());
      vocab.push_back(s);
    }
  };
  for (int b = 0; b < 256; ++b) add(byte_to_unicode(static_cast<uint8_t>(b)));
  std::vector<std::vector<std::string>> words;
  for (auto w : pretokenize(text, PreTokenizer::kLlama3)) {
    std::vector<std::string> syms;
    for (unsigned char c : w) syms.push_back(byte_to_unicode(c));
    words.push_back(syms);
  }
  json merges = json::array();
  for (int m = 0; m < n_merges; ++m) {
    std::map<std::pair<std::string, std::string>, int> counts;
    for (auto& w : words)
      for (size_t i = 0; i + 1 < w.size(); ++i) counts[{w[i], w[i + 1]}]++;
    if (counts.empty()) break;
    auto best = counts.begin();
    for (auto it = counts.begin(); it != counts.end(); ++it)
      if (it->second > best->second) best = it;
    auto [a, b] = best->first;
    merges.push_back(a + " " + b);
    add(a + b);
    for (auto& w : words) {
      std::vector<std::string> o;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
          o.push_back(a + b);
          ++i;
        } else {
          o.push_back(w[i]);
        }
      }
      w = o;
    }
  }
  json v = json::object();
  for (size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = i;
  const int n = static_cast<int>(vocab.size());
  return {{"version", "1.0"},
          {"added_tokens",
           {{{"id", n}, {"content", "<|begin_of_text|>"}, {"special", true}},
            {{"id", n + 1}, {"content", "<|eot_id|>"}, {"special", true}}}},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"},
               {"pattern",
                {{"Regex",
                  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}}}}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", v}, {"merges", merges}}}};
}

void write(const std::string& path, const std::string& s) { std::ofstream(path) << s; }

const char* kTrain =
    "The quick brown fox jumps over the lazy dog. The dog sleeps. The fox runs away!\n"
    "Once upon a time there was a little girl who loved the forest and the sea.\n"
    "In 2024, 12345 tokens were counted; the count was 67890.\n";

class ByteLevelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir("bpe_bytelevel");
    write(dir_ + "/tokenizer.json", train_tokenizer_json(kTrain, 120).dump());
    write(dir_ + "/tokenizer_config.json",
          json{{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}}.dump());
    auto t = load_hf_tokenizer(dir_);
    ASSERT_TRUE(t.ok()) << t.status().message();
    tok_ = std::move(t).value();
  }
  std::string dir_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(ByteLevelTest, RoundTripsArbitraryText) {
  for (std::string s : std::vector<std::string>{
           "The quick brown fox", " leading space", "trailing  ", "Ünïcödé — 日本語 🦙!",
           "tabs\tand\r\nnewlines\n\n\n", "digits 3.14159 and 1,000,000", "", "'s 'T 'll",
           std::string("bytes \x01\x7f\xff\xfe\0 ok", 14)}) {  // a NUL byte inside
    auto ids = tok_->encode(s, false);
    EXPECT_EQ(tok_->decode(ids), s);
  }
}

TEST_F(ByteLevelTest, MergesCompressTrainingText) {
  auto ids = tok_->encode("The quick brown fox jumps over the lazy dog.", false);
  EXPECT_LT(ids.size(), 30u);  // 44 bytes without merges
}

TEST_F(ByteLevelTest, SpecialTokensAndBos) {
  const int bos = tok_->special().bos, eos = tok_->special().eos;
  EXPECT_EQ(tok_->token_text(bos), "<|begin_of_text|>");
  EXPECT_TRUE(tok_->special().add_bos);  // Llama-3 style: BOS named, no add_bos_token key
  auto ids = tok_->encode("hi<|eot_id|>there", true);
  EXPECT_EQ(ids.front(), bos);
  EXPECT_NE(std::find(ids.begin(), ids.end(), eos), ids.end());
  EXPECT_TRUE(tok_->is_eos(eos));
  EXPECT_EQ(tok_->decode(ids), "hithere");  // control tokens print nothing
}

TEST_F(ByteLevelTest, BoundedEncodingStopsExactlyPastTheLimit) {
  for (std::string s : {std::string("The quick brown fox jumps over the lazy dog."),
                        std::string("hi<|eot_id|>there and <|eot_id|> again"),
                        std::string("Ünïcödé — 日本語 🦙! tabs\tand\r\n")}) {
    const std::vector<int> ids = tok_->encode(s, true);
    EXPECT_EQ(tok_->encode_at_most(s, true, ids.size()), ids) << s;
    EXPECT_EQ(tok_->encode_at_most(s, true, ids.size() - 1), std::nullopt) << s;
    EXPECT_EQ(tok_->encode_at_most(s, true, 1), std::nullopt) << s;
  }
}

TEST(BpeTest, HandBuiltMergesGiveExpectedPieces) {
  json v = json::object();
  int n = 0;
  for (int b = 0; b < 256; ++b) v[byte_to_unicode(static_cast<uint8_t>(b))] = n++;
  for (const char* s : {"he", "ll", "hell", "hello"}) v[s] = n++;
  json j = {
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
      {"model", {{"type", "BPE"}, {"vocab", v}, {"merges", {"h e", "l l", "he ll", "hell o"}}}}};
  const std::string dir = test::temp_dir("bpe_hand");
  write(dir + "/tokenizer.json", j.dump());
  auto t = load_hf_tokenizer(dir);
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto ids = (*t)->encode("hello hell", false);
  std::vector<std::string> pieces;
  for (int id : ids) pieces.push_back((*t)->token_text(id));
  EXPECT_EQ(pieces, (std::vector<std::string>{"hello", "\xC4\xA0", "hell"}));
}

TEST(BpeTest, RejectsMergesOfUnknownTokens) {
  json j = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}}}, {"merges", {"a b"}}}}};
  const std::string dir = test::temp_dir("bpe_bad");
  write(dir + "/tokenizer.json", j.dump());
  auto t = load_hf_tokenizer(dir);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("merge 0"), std::string::npos) << t.status().message();
}

}  // namespace
}  // namespace rme
