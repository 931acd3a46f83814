// tests/server: OpenAI request parsing details and UTF-8-safe streaming of token pieces.
#include "server/openai.h"

#include <gtest/gtest.h>

namespace rme {
namespace {

TEST(Utf8StreamTest, HoldsBackSplitCharactersUntilComplete) {
  Utf8Stream s;
  const std::string euro = "\xE2\x82\xAC";  // €, three bytes
  EXPECT_EQ(s.push("a" + euro.substr(0, 1)), "a");
  EXPECT_EQ(s.push(euro.substr(1, 1)), "");
  EXPECT_EQ(s.push(euro.substr(2) + "b"), euro + "b");
  EXPECT_EQ(s.push("\xF0\x9F"), "");  // half of a four-byte emoji
  EXPECT_EQ(s.flush(), "??");          // an unfinished character never reaches the client raw
  EXPECT_EQ(s.flush(), "");
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

}  // namespace
}  // namespace rme
