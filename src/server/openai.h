// server: the OpenAI-compatible request and response shapes — parsing with limits (every field
// either honoured or refused with a message naming it), the default chat template, and the JSON
// rendering of completions, chunks, log-probabilities and errors.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/batch_engine.h"
#include "server/completion_text.h"
#include "tokenizer/tokenizer.h"

namespace rme {

struct ApiLimits {
  int max_prompt_tokens = 2048;
  int max_new_tokens = 1024;
  int default_max_tokens = 16;
};

inline constexpr int kMaxStops = 4;  // OpenAI's limit on "stop" (top logprobs: kMaxTopLogprobs)

struct ChatMessage {
  std::string role, content;
};

// A parsed /v1/completions or /v1/chat/completions body.
struct ApiRequest {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with usage
  std::string model;
  RequestParams params;  // prompt tokens, max_new, sampling, logprobs (stop ids: the caller's)
  std::vector<std::string> stop;  // stop strings, excluded from the text
  bool logprobs = false;          // report log-probabilities (params.logprobs = top count)
  bool echo = false;              // completions: the prompt text precedes the completion
  std::string echo_text;          // the prompt as text, when echo
};

// Parses and validates a body (invalid JSON, wrong types, out-of-range values, too long prompts,
// unsupported fields: invalid_argument with a message naming the field). Prompts: a string, an
// array of token ids, or a one-element array of either; chat: messages [{role, content}] with
// string content or text parts, rendered by chat_prompt(). Without "seed", temperature > 0
// draws from a fresh seed per request.
Result<ApiRequest> parse_api_request(const std::string& body, bool chat, const Tokenizer& tok,
                                     const ApiLimits& limits);

// The documented default chat template (rme's own, for models without one):
//   "<|system|>\n{content}\n" ... "<|user|>\n{content}\n" ... "<|assistant|>\n"
std::string chat_prompt(const std::vector<ChatMessage>& messages);

// A server-side error message as clients may see it: every absolute path (a checkpoint, an
// expert file) shortened to its file name, so responses tell the expert and the cause without
// revealing the server's directories (the log keeps the whole message).
std::string redact_paths(const std::string& message);

// OpenAI's error shape: {"error": {"message", "type", "param", "code"}}.
std::string api_error(const std::string& message,
                      const std::string& type = "invalid_request_error");

// The "logprobs" value of a choice for tokens (null when the request did not ask): completions
// {tokens, token_logprobs, top_logprobs, text_offset}; chat {content: [{token, logprob, bytes,
// top_logprobs}]}. offset_base: where the completion starts in the choice's text (echo).
nlohmann::json logprobs_json(const ApiRequest& r, const Tokenizer& tok,
                             const std::vector<TextToken>& tokens, size_t offset_base);

// Bodies. created: unix seconds; finish_reason null while streaming.
nlohmann::json completion_body(const ApiRequest& r, const std::string& id, int64_t created,
                               const std::string& text, const char* finish_reason,
                               int prompt_tokens, int completion_tokens,
                               nlohmann::json logprobs = nullptr);
nlohmann::json chunk_body(const ApiRequest& r, const std::string& id, int64_t created,
                          const std::string& text, const char* finish_reason,
                          nlohmann::json logprobs = nullptr);
nlohmann::json usage_json(int prompt_tokens, int completion_tokens);

}  // namespace rme
