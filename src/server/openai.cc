// server: OpenAI request parsing/validation and response rendering.
#include "server/openai.h"

#include <cmath>

#include "core/json.h"

namespace rme {

using nlohmann::json;

namespace {

Status type_error(const std::string& field, const char* want) {
  return invalid_argument("'" + field + "' must be " + want);
}

Result<double> number(const json& body, const std::string& field, double def, double lo,
                      double hi) {
  if (!body.contains(field) || body[field].is_null()) return def;
  if (!body[field].is_number()) return type_error(field, "a number");
  const double v = body[field].get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    return invalid_argument("'" + field + "' must be in [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "]");
  return v;
}

Result<std::vector<int>> prompt_tokens(const json& p, const Tokenizer& tok) {
  if (p.is_string()) return tok.encode(p.get<std::string>(), true);
  if (p.is_array() && p.size() == 1 && (p[0].is_string() || p[0].is_array()))
    return prompt_tokens(p[0], tok);
  if (p.is_array() && !p.empty()) {
    std::vector<int> ids;
    for (const auto& x : p) {
      if (!x.is_number_integer()) return type_error("prompt", "a string or an array of token ids");
      const int64_t v = x.get<int64_t>();
      if (v < 0 || v >= tok.n_vocab())
        return invalid_argument("'prompt' token id " + std::to_string(v) + " outside [0, " +
                                std::to_string(tok.n_vocab()) + ")");
      ids.push_back(static_cast<int>(v));
    }
    return ids;
  }
  return type_error("prompt", "a non-empty string or array of token ids");
}

}  // namespace

std::string chat_prompt(const std::vector<ChatMessage>& messages) {
  std::string s;
  for (const auto& m : messages) s += "<|" + m.role + "|>\n" + m.content + "\n";
  return s + "<|assistant|>\n";
}

Result<ApiRequest> parse_api_request(const std::string& text, bool chat, const Tokenizer& tok,
                                     const ApiLimits& limits) {
  RME_ASSIGN_OR_RETURN(json body,
                       parse_json(text, "the body", StatusCode::kInvalidArgument));
  if (!body.is_object()) return invalid_argument("the body must be a JSON object");
  ApiRequest r;
  r.chat = chat;
  if (body.contains("model") && !body["model"].is_null()) {
    if (!body["model"].is_string()) return type_error("model", "a string");
    r.model = body["model"].get<std::string>();
  }
  if (body.contains("stream") && !body["stream"].is_null()) {
    if (!body["stream"].is_boolean()) return type_error("stream", "a boolean");
    r.stream = body["stream"].get<bool>();
  }
  if (body.contains("n") && !body["n"].is_null() && body["n"] != 1)
    return invalid_argument("'n' must be 1");
  std::vector<int> ids;
  if (chat) {
    if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
      return type_error("messages", "a non-empty array");
    std::vector<ChatMessage> msgs;
    for (const auto& m : body["messages"]) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() ||
          !m.contains("content") || !m["content"].is_string())
        return type_error("messages", "objects with string 'role' and 'content'");
      const std::string role = m["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant")
        return invalid_argument("'messages' role must be system, user or assistant");
      msgs.push_back({role, m["content"].get<std::string>()});
    }
    ids = tok.encode(chat_prompt(msgs), true);
  } else {
    if (!body.contains("prompt")) return invalid_argument("'prompt' is required");
    RME_ASSIGN_OR_RETURN(ids, prompt_tokens(body["prompt"], tok));
  }
  if (ids.empty()) return invalid_argument("'prompt' encodes to no tokens");
  if (static_cast<int>(ids.size()) > limits.max_prompt_tokens)
    return invalid_argument("the prompt has " + std::to_string(ids.size()) +
                            " tokens, more than the limit of " +
                            std::to_string(limits.max_prompt_tokens));
  r.params.prompt = std::move(ids);
  const char* max_key =
      body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  RME_ASSIGN_OR_RETURN(double max_new,
                       number(body, max_key, limits.default_max_tokens, 1, limits.max_new_tokens));
  if (max_new != std::floor(max_new)) return type_error(max_key, "an integer");
  r.params.max_new = static_cast<int>(max_new);
  SamplingParams& s = r.params.sampling;
  RME_ASSIGN_OR_RETURN(double temp, number(body, "temperature", 1.0, 0, 2));
  RME_ASSIGN_OR_RETURN(double top_p, number(body, "top_p", 1.0, 1e-6, 1));
  RME_ASSIGN_OR_RETURN(double top_k, number(body, "top_k", 0, 0, 1e6));
  RME_ASSIGN_OR_RETURN(double min_p, number(body, "min_p", 0, 0, 1));
  RME_ASSIGN_OR_RETURN(double seed, number(body, "seed", 0, 0, 9.007199254740992e15));
  s.temperature = static_cast<float>(temp);
  s.top_p = static_cast<float>(top_p);
  s.top_k = static_cast<int>(top_k);
  s.min_p = static_cast<float>(min_p);
  s.seed = static_cast<uint64_t>(seed);
  if (body.contains("ignore_eos") && !body["ignore_eos"].is_null()) {
    if (!body["ignore_eos"].is_boolean()) return type_error("ignore_eos", "a boolean");
    r.params.ignore_eos = body["ignore_eos"].get<bool>();
  }
  return r;
}

std::string api_error(const std::string& message, const std::string& type) {
  return json{
      {"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}}
      .dump();
}

json completion_body(const ApiRequest& r, const std::string& id, int64_t created,
                     const std::string& text, const char* finish, int n_prompt, int n_out) {
  json choice = {{"index", 0}, {"finish_reason", finish}};
  if (r.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})},
          {"usage",
           {{"prompt_tokens", n_prompt},
            {"completion_tokens", n_out},
            {"total_tokens", n_prompt + n_out}}}};
}

json chunk_body(const ApiRequest& r, const std::string& id, int64_t created,
                const std::string& text, const char* finish) {
  json choice = {{"index", 0}, {"finish_reason", finish ? json(finish) : json(nullptr)}};
  if (r.chat) {
    choice["delta"] = finish ? json::object() : json{{"content", text}};
  } else {
    choice["text"] = text;
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})}};
}

std::string Utf8Stream::push(const std::string& bytes) {
  pending_ += bytes;
  // Find where the last complete character ends.
  size_t end = pending_.size();
  size_t i = pending_.size();
  int back = 0;
  while (i > 0 && back < 4) {
    --i;
    ++back;
    const unsigned char c = pending_[i];
    if ((c & 0xC0) != 0x80) {  // a lead byte (or ASCII)
      const int need = c < 0x80         ? 1
                       : (c >> 5) == 6  ? 2
                       : (c >> 4) == 14 ? 3
                       : (c >> 3) == 30 ? 4
                                        : 1;
      if (back < need) end = i;
      break;
    }
  }
  std::string out = pending_.substr(0, end);
  pending_.erase(0, end);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  for (unsigned char c : pending_) out += c < 0x80 ? static_cast<char>(c) : '?';
  pending_.clear();
  return out;
}

}  // namespace rme
