// server: the OpenAI-compatible request and response shapes — parsing with limits, the default
// chat template, and the JSON rendering of completions, chunks and errors.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/batch_engine.h"
#include "tokenizer/tokenizer.h"

namespace rme {

struct ApiLimits {
  int max_prompt_tokens = 2048;
  int max_new_tokens = 1024;
  int default_max_tokens = 16;
};

struct ChatMessage {
  std::string role, content;
};

// A parsed /v1/completions or /v1/chat/completions body.
struct ApiRequest {
  bool chat = false;
  bool stream = false;
  std::string model;
  RequestParams params;  // prompt tokens, max_new, sampling, ignore_eos (stop ids: the caller's)
};

// Parses and validates a body (invalid JSON, wrong types, out-of-range values, too long prompts:
// invalid_argument with a message naming the field). Prompts: a string, an array of token ids,
// or a one-element array of either; chat: messages [{role, content}] rendered by chat_prompt().
Result<ApiRequest> parse_api_request(const std::string& body, bool chat, const Tokenizer& tok,
                                     const ApiLimits& limits);

// The documented default chat template (rme's own, for models without one):
//   "<|system|>\n{content}\n" ... "<|user|>\n{content}\n" ... "<|assistant|>\n"
std::string chat_prompt(const std::vector<ChatMessage>& messages);

// OpenAI's error shape: {"error": {"message", "type", "param", "code"}}.
std::string api_error(const std::string& message,
                      const std::string& type = "invalid_request_error");

// Bodies. created: unix seconds.
nlohmann::json completion_body(const ApiRequest& r, const std::string& id, int64_t created,
                               const std::string& text, const char* finish_reason,
                               int prompt_tokens, int completion_tokens);
nlohmann::json chunk_body(const ApiRequest& r, const std::string& id, int64_t created,
                          const std::string& text, const char* finish_reason);

// Holds back a trailing incomplete UTF-8 sequence so streamed pieces are always valid UTF-8.
class Utf8Stream {
 public:
  std::string push(const std::string& bytes);  // the complete prefix, buffered remainder kept
  std::string flush();                         // whatever is left (invalid bytes replaced)

 private:
  std::string pending_;
};

}  // namespace rme
