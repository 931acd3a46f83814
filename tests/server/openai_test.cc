// tests/server: OpenAI request parsing (every field honoured or refused, bounded nesting), stop
// strings across token boundaries, UTF-8-safe release of text and log-probabilities.
#include "server/openai.h"

#include <gtest/gtest.h>

#include "core/json.h"
#include "server/completion_text.h"

namespace rme {
namespace {

// Token i decodes to pieces_[i]; encode() splits on nothing (one token per byte, id = byte).
class FakeTokenizer : public Tokenizer {
 public:
  explicit FakeTokenizer(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {
    for (int i = 0; i < 256; ++i) pieces_.push_back(std::string(1, static_cast<char>(i)));
  }
  std::vector<int> encode(std::string_view text, bool) const override {
    std::vector<int> ids;
    for (unsigned char c : text) ids.push_back(static_cast<int>(pieces_.size()) - 256 + c);
    return ids;
  }
  std::string decode_token(int, int token) const override { return pieces_[token]; }
  const std::string& token_text(int id) const override { return pieces_[id]; }
  TokenType token_type(int) const override { return TokenType::kNormal; }
  int n_vocab() const override { return static_cast<int>(pieces_.size()); }
  std::string kind() const override { return "fake"; }
  BpeVocab export_vocab() const override { return {}; }

 private:
  std::vector<std::string> pieces_;
};

std::string feed(CompletionText& c, std::vector<int> ids, std::vector<int>* released = nullptr) {
  std::string text;
  for (int id : ids) {
    TextPiece p = c.push({id, -0.5f, {}});
    text += p.text;
    if (released)
      for (const auto& t : p.tokens) released->push_back(t.id);
    if (c.stopped()) return text;
  }
  TextPiece p = c.finish();
  if (released)
    for (const auto& t : p.tokens) released->push_back(t.id);
  return text + p.text;
}

TEST(CompletionTextTest, HoldsBackSplitCharactersUntilComplete) {
  const std::string euro = "\xE2\x82\xAC";  // €, three bytes, split over three tokens
  FakeTokenizer tok({"a" + euro.substr(0, 1), euro.substr(1, 1), euro.substr(2) + "b"});
  CompletionText c(tok, -1, {});
  EXPECT_EQ(c.push({0, 0, {}}).text, "a");
  TextPiece p = c.push({1, 0, {}});
  EXPECT_EQ(p.text, "");
  EXPECT_TRUE(p.tokens.empty());  // token 0's last byte is not out yet
  p = c.push({2, 0, {}});
  EXPECT_EQ(p.text, euro + "b");
  EXPECT_EQ(p.tokens.size(), 3u);  // released with the text that completes them
  EXPECT_EQ(utf8_complete_prefix("x\xF0\x9F"), 1u);
  EXPECT_EQ(utf8_complete_prefix("x\xF0\x9F\x98\x80"), 5u);
}

TEST(CompletionTextTest, StopStringAcrossTokensIsExcluded) {
  FakeTokenizer tok({"Hello", " wor", "ld", "!", " and more"});
  std::vector<int> released;
  CompletionText c(tok, -1, {"world!"});
  EXPECT_EQ(feed(c, {0, 1, 2, 3, 4}, &released), "Hello ");
  EXPECT_TRUE(c.stopped());
  EXPECT_EQ(c.n_tokens(), 4);
  EXPECT_EQ(released, (std::vector<int>{0, 1}));  // " wor" holds text before the stop
  // The earliest of several stops wins; text that only looked like a stop's start is released.
  CompletionText d(tok, -1, {"more", " wx", "ld"});
  EXPECT_EQ(feed(d, {0, 1, 2}), "Hello wor");
  CompletionText e(tok, -1, {" wx"});
  EXPECT_EQ(feed(e, {0, 1, 2, 3}), "Hello world!");
  EXPECT_FALSE(e.stopped());
  // A stop inside one token cuts that token's text.
  CompletionText f(tok, -1, {"ell"});
  EXPECT_EQ(feed(f, {0, 1}), "H");
}

TEST(RedactPathsTest, AbsolutePathsBecomeFileNames) {
  EXPECT_EQ(redact_paths("/srv/models/moe.gguf: expert 3 of layer 2: short read (0 of 4096 "
                         "bytes)"),
            "moe.gguf: expert 3 of layer 2: short read (0 of 4096 bytes)");
  EXPECT_EQ(redact_paths("open '/a/b/c.bin' failed (path=/x/y.z, /tmp/dir/)"),
            "open 'c.bin' failed (path=y.z, )");
  EXPECT_EQ(redact_paths("3/4 of the tokens; a/b stays"), "3/4 of the tokens; a/b stays");
  EXPECT_EQ(redact_paths(""), "");
}

TEST(ChatPromptTest, DocumentedDefaultTemplate) {
  EXPECT_EQ(chat_prompt({{"system", "Be brief."}, {"user", "Hi"}}),
            "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n");
}

TEST(ApiErrorTest, HasOpenAisShape) {
  auto j = nlohmann::json::parse(api_error("bad 'x'"));
  EXPECT_EQ(j["error"]["message"], "bad 'x'");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(j["error"].contains("param") && j["error"].contains("code"));
}

class ParseTest : public ::testing::Test {
 protected:
  Result<ApiRequest> parse(const std::string& body, bool chat = false) {
    return parse_api_request(body, chat, tok_, ApiLimits{});
  }
  std::string why(const std::string& body, bool chat = false) {
    auto r = parse(body, chat);
    return r.ok() ? "" : r.status().message();
  }
  FakeTokenizer tok_{{}};
};

TEST_F(ParseTest, HonoursOpenAiParameters) {
  auto r = parse(R"({"prompt": "hi", "stop": ["a", "bc"], "logprobs": 3, "seed": 7,
      "presence_penalty": 0.5, "frequency_penalty": -1, "logit_bias": {"65": -100},
      "max_tokens": 5, "user": "u1", "n": 1, "best_of": 1})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->params.logprobs, 3);
  EXPECT_EQ(r->params.sampling.seed, 7u);
  EXPECT_FLOAT_EQ(r->params.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r->params.sampling.frequency_penalty, -1.0f);
  ASSERT_EQ(r->params.sampling.logit_bias.size(), 1u);
  EXPECT_EQ(r->params.sampling.logit_bias[0].first, 65);
  EXPECT_EQ(r->params.max_new, 5);
  auto c = parse(R"({"messages": [{"role": "developer", "content": [{"type": "text", "text": "x"}]},
      {"role": "user", "content": "y"}], "logprobs": true, "top_logprobs": 2, "stop": "z",
      "stream": true, "stream_options": {"include_usage": true}})",
                 true);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->params.logprobs, 2);
  EXPECT_TRUE(c->include_usage);
  EXPECT_EQ(c->stop, std::vector<std::string>{"z"});
  // Without a seed, two requests draw differently.
  EXPECT_NE(parse(R"({"prompt": "hi"})")->params.sampling.seed,
            parse(R"({"prompt": "hi"})")->params.sampling.seed);
}

TEST_F(ParseTest, RefusesWhatItDoesNotDo) {
  EXPECT_NE(why(R"({"prompt": "hi", "stop": 5})").find("'stop'"), std::string::npos);
  EXPECT_NE(why(R"({"prompt": "hi", "stop": ["a","b","c","d","e"]})").find("'stop'"),
            std::string::npos);
  EXPECT_NE(why(R"({"prompt": "hi", "stop": [""]})").find("'stop'"), std::string::npos);
  EXPECT_NE(why(R"({"prompt": "hi", "n": 2})").find("'n'"), std::string::npos);
  EXPECT_NE(why(R"({"prompt": "hi", "best_of": 3})").find("'best_of'"), std::string::npos);
  EXPECT_NE(why(R"({"prompt": "hi", "suffix": "x"})").find("'suffix'"), std::string::npos);
  EXPECT_NE(why(R"({"prompt": "hi", "frobnicate": 1})").find("'frobnicate'"), std::string::npos);
  EXPECT_NE(why(R"({"prompt": "hi", "logprobs": 21})").find("'logprobs'"), std::string::npos);
  EXPECT_NE(why(R"({"prompt": "hi", "echo": true, "logprobs": 1})").find("'echo'"),
            std::string::npos);
  EXPECT_NE(why(R"({"prompt": "hi", "logit_bias": {"x": 1}})").find("'logit_bias'"),
            std::string::npos);
  EXPECT_NE(why(R"({"prompt": "hi", "presence_penalty": 3})").find("'presence_penalty'"),
            std::string::npos);
  EXPECT_NE(why(R"({"prompt": "hi", "stream_options": {"include_usage": true}})")
                .find("'stream_options'"),
            std::string::npos);
  EXPECT_NE(
      why(R"({"messages": [{"role": "user", "content": "x"}], "tools": []})", true).find("'tools'"),
      std::string::npos);
  EXPECT_NE(why(R"({"messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "json_object"}})",
                true)
                .find("'response_format'"),
            std::string::npos);
  EXPECT_NE(why(R"({"messages": [{"role": "user", "content": "x", "name": "n"}]})", true)
                .find("'messages[].name'"),
            std::string::npos);
  EXPECT_NE(why(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", true)
                .find("'top_logprobs'"),
            std::string::npos);
  EXPECT_NE(why(R"({"prompt": [[[1]]]})").find("'prompt'"), std::string::npos);
}

TEST_F(ParseTest, DeepNestingIsAnErrorNotACrash) {
  const std::string deep =
      "{\"prompt\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_NE(why(deep).find("nested"), std::string::npos);
  EXPECT_EQ(json_nesting_depth(R"({"a": "[[[[", "b": [1, {"c": "\"]"}]})"), 3);
}

}  // namespace
}  // namespace rme
