// server: OpenAI request parsing/validation and response rendering.
#include "server/openai.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <set>

#include "core/hash.h"
#include "core/json.h"

namespace rme {

using nlohmann::json;

namespace {

Status type_error(const std::string& field, const char* want) {
  return invalid_argument("'" + field + "' must be " + want);
}

// Fields each endpoint honours (OpenAI's, plus the common extensions top_k, min_p,
// repetition_penalty, ignore_eos). Anything else is refused, so no setting is silently dropped.
const std::set<std::string>& known_fields(bool chat) {
  static const std::set<std::string> kCommon = {"model",
                                                "max_tokens",
                                                "temperature",
                                                "top_p",
                                                "n",
                                                "stream",
                                                "stream_options",
                                                "stop",
                                                "presence_penalty",
                                                "frequency_penalty",
                                                "logit_bias",
                                                "logprobs",
                                                "user",
                                                "seed",
                                                "top_k",
                                                "min_p",
                                                "repetition_penalty",
                                                "ignore_eos"};
  static const std::set<std::string> kChat = [] {
    std::set<std::string> s = kCommon;
    s.insert({"messages", "max_completion_tokens", "top_logprobs", "response_format", "tools",
              "tool_choice", "functions", "function_call", "parallel_tool_calls"});
    return s;
  }();
  static const std::set<std::string> kCompletion = [] {
    std::set<std::string> s = kCommon;
    s.insert({"prompt", "echo", "best_of", "suffix"});
    return s;
  }();
  return chat ? kChat : kCompletion;
}

Status too_long(size_t max_tokens) {
  return invalid_argument("the prompt has more than " + std::to_string(max_tokens) +
                          " tokens, the limit");
}

// Tokenizes at most max_tokens + 1 tokens of the text: an over-long prompt is refused having
// cost about its bytes, not a full tokenization.
Result<std::vector<int>> text_tokens(const std::string& text, const Tokenizer& tok,
                                     size_t max_tokens) {
  auto ids = tok.encode_at_most(text, true, max_tokens);
  if (!ids) return too_long(max_tokens);
  return std::move(*ids);
}

Result<std::vector<int>> prompt_tokens(const json& p, const Tokenizer& tok, size_t max_tokens,
                                       bool unwrap = true) {
  if (p.is_string()) return text_tokens(p.get_ref<const std::string&>(), tok, max_tokens);
  // One level of [prompt] is unwrapped (OpenAI's batch form with one prompt); never recursively.
  if (unwrap && p.is_array() && p.size() == 1 && (p[0].is_string() || p[0].is_array()))
    return prompt_tokens(p[0], tok, max_tokens, false);
  if (p.is_array() && p.size() > max_tokens) return too_long(max_tokens);
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
  return type_error("prompt", "a non-empty string or array of token ids (one prompt per request)");
}

Result<std::string> message_content(const json& c) {
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) return type_error("messages[].content", "a string or an array of text parts");
  std::string text;
  for (const json& part : c) {
    if (!part.is_object() || !part.contains("type") || part["type"] != "text" ||
        !part.contains("text") || !part["text"].is_string())
      return invalid_argument(
          "'messages[].content' parts must be {\"type\": \"text\", \"text\": ...} (rme reads "
          "text only)");
    text += part["text"].get<std::string>();
  }
  return text;
}

Result<std::vector<int>> chat_tokens(const json& body, const Tokenizer& tok, size_t max_tokens) {
  if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
    return type_error("messages", "a non-empty array");
  std::vector<ChatMessage> msgs;
  for (const auto& m : body["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content"))
      return type_error("messages", "objects with a string 'role' and a 'content'");
    for (const auto& [k, v] : m.items())
      if (k != "role" && k != "content")
        return invalid_argument("'messages[]." + k + "' is not supported (role and content only)");
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for system instructions
    if (role != "system" && role != "user" && role != "assistant")
      return invalid_argument("'messages' role must be system, developer, user or assistant");
    RME_ASSIGN_OR_RETURN(std::string content, message_content(m["content"]));
    msgs.push_back({role, std::move(content)});
  }
  return text_tokens(chat_prompt(msgs), tok, max_tokens);
}

Result<std::vector<std::string>> stop_strings(const json& body) {
  std::vector<std::string> stops;
  if (!body.contains("stop") || body["stop"].is_null()) return stops;
  const json& s = body["stop"];
  const char* want = "a string or an array of at most 4 non-empty strings";
  if (s.is_string()) {
    stops.push_back(s.get<std::string>());
  } else if (s.is_array() && s.size() <= kMaxStops) {
    for (const json& x : s) {
      if (!x.is_string()) return type_error("stop", want);
      stops.push_back(x.get<std::string>());
    }
  } else {
    return type_error("stop", want);
  }
  for (const auto& x : stops)
    if (x.empty()) return type_error("stop", want);
  return stops;
}

Status sampling_fields(const json& body, const JsonFields& f, SamplingParams& s) {
  RME_ASSIGN_OR_RETURN(double temp, f.number("temperature", 1.0, 0, 2));
  RME_ASSIGN_OR_RETURN(double top_p, f.number("top_p", 1.0, 1e-6, 1));
  RME_ASSIGN_OR_RETURN(int64_t top_k, f.integer("top_k", 0, 0, 1000000));
  RME_ASSIGN_OR_RETURN(double min_p, f.number("min_p", 0, 0, 1));
  RME_ASSIGN_OR_RETURN(double rep, f.number("repetition_penalty", 1.0, 0.01, 100));
  RME_ASSIGN_OR_RETURN(double presence, f.number("presence_penalty", 0, -2, 2));
  RME_ASSIGN_OR_RETURN(double frequency, f.number("frequency_penalty", 0, -2, 2));
  s.temperature = static_cast<float>(temp);
  s.top_p = static_cast<float>(top_p);
  s.top_k = static_cast<int>(top_k);
  s.min_p = static_cast<float>(min_p);
  s.repeat_penalty = static_cast<float>(rep);
  s.repeat_last_n = 64;
  s.presence_penalty = static_cast<float>(presence);
  s.frequency_penalty = static_cast<float>(frequency);
  if (f.has("seed")) {
    RME_ASSIGN_OR_RETURN(int64_t seed, f.integer("seed", 0, INT64_MIN, INT64_MAX));
    s.seed = static_cast<uint64_t>(seed);
  } else {  // OpenAI samples differently each time unless a seed is given
    static std::atomic<uint64_t> counter{0};
    s.seed = splitmix(
        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
        splitmix(counter++));
  }
  if (f.has("logit_bias")) {
    const json& b = body["logit_bias"];
    const char* want = "an object mapping token ids to biases in [-100, 100]";
    if (!b.is_object()) return type_error("logit_bias", want);
    if (b.size() > 1024) return invalid_argument("'logit_bias' has more than 1024 entries");
    for (const auto& [k, v] : b.items()) {
      char* end = nullptr;
      const long id = std::strtol(k.c_str(), &end, 10);
      if (k.empty() || *end != '\0' || id < 0 || id > (1 << 30) || !v.is_number())
        return type_error("logit_bias", want);
      const double bias = v.get<double>();
      if (!std::isfinite(bias) || bias < -100 || bias > 100) return type_error("logit_bias", want);
      s.logit_bias.emplace_back(static_cast<int>(id), static_cast<float>(bias));
    }
  }
  return Status::Ok();
}

// Fields refused with a reason rather than a bare "unsupported".
Status refused_fields(const json& body, const JsonFields& f, bool chat) {
  RME_ASSIGN_OR_RETURN(int64_t n, f.integer("n", 1, 1, 1 << 20));
  if (n != 1) return invalid_argument("'n' must be 1 (one choice per request: send n requests)");
  for (const char* k :
       {"tools", "tool_choice", "functions", "function_call", "parallel_tool_calls"})
    if (f.has(k)) return invalid_argument(std::string("'") + k + "': tool calls are not supported");
  if (chat && f.has("response_format")) {
    const json& rf = body["response_format"];
    if (!rf.is_object() || !rf.contains("type") || rf["type"] != "text")
      return invalid_argument("'response_format' must be {\"type\": \"text\"} (no JSON mode)");
  }
  if (!chat) {
    RME_ASSIGN_OR_RETURN(int64_t best_of, f.integer("best_of", 1, 1, 1 << 20));
    if (best_of != 1) return invalid_argument("'best_of' must be 1");
    RME_ASSIGN_OR_RETURN(std::string suffix, f.string("suffix", ""));
    if (!suffix.empty()) return invalid_argument("'suffix' (insertion) is not supported");
  }
  RME_ASSIGN_OR_RETURN(std::string user, f.string("user", ""));  // an end-user id: not used
  (void)user;
  return Status::Ok();
}

}  // namespace

std::string redact_paths(const std::string& message) {
  std::string out;
  out.reserve(message.size());
  auto stops = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == ':' || c == '\'' || c == '"' || c == ')' ||
           c == ',' || c == ';';
  };
  for (size_t i = 0; i < message.size();) {
    const bool starts = message[i] == '/' && (i == 0 || stops(message[i - 1]) ||
                                              message[i - 1] == '(' || message[i - 1] == '=');
    if (!starts) {
      out += message[i++];
      continue;
    }
    size_t end = i;
    while (end < message.size() && !stops(message[end])) ++end;
    const std::string_view path(message.data() + i, end - i);
    out += path.substr(path.rfind('/') + 1);  // the file name; "" for a directory's trailing '/'
    i = end;
  }
  return out;
}

std::string chat_prompt(const std::vector<ChatMessage>& messages) {
  std::string s;
  for (const auto& m : messages) s += "<|" + m.role + "|>\n" + m.content + "\n";
  return s + "<|assistant|>\n";
}

Result<ApiRequest> parse_api_request(const std::string& text, bool chat, const Tokenizer& tok,
                                     const ApiLimits& limits) {
  RME_ASSIGN_OR_RETURN(json body, parse_json(text, "the body", StatusCode::kInvalidArgument));
  if (!body.is_object()) return invalid_argument("the body must be a JSON object");
  for (const auto& [k, v] : body.items())
    if (!known_fields(chat).count(k)) return invalid_argument("unsupported field '" + k + "'");
  const JsonFields f(body, "the body", StatusCode::kInvalidArgument);
  ApiRequest r;
  r.chat = chat;
  RME_ASSIGN_OR_RETURN(r.model, f.string("model", ""));
  RME_ASSIGN_OR_RETURN(r.stream, f.boolean("stream", false));
  RME_RETURN_IF_ERROR(refused_fields(body, f, chat));
  if (f.has("stream_options")) {
    const json& so = body["stream_options"];
    if (!r.stream)
      return invalid_argument("'stream_options' is only allowed with \"stream\": true");
    if (!so.is_object()) return type_error("stream_options", "an object");
    for (const auto& [k, v] : so.items())
      if (k != "include_usage")
        return invalid_argument("'stream_options." + k + "' is not supported");
    RME_ASSIGN_OR_RETURN(r.include_usage,
                         JsonFields(so, "'stream_options'", StatusCode::kInvalidArgument)
                             .boolean("include_usage", false));
  }
  std::vector<int> ids;
  const size_t max_prompt = static_cast<size_t>(std::max(0, limits.max_prompt_tokens));
  if (chat) {
    RME_ASSIGN_OR_RETURN(ids, chat_tokens(body, tok, max_prompt));
  } else {
    if (!body.contains("prompt")) return invalid_argument("'prompt' is required");
    RME_ASSIGN_OR_RETURN(ids, prompt_tokens(body["prompt"], tok, max_prompt));
  }
  if (ids.empty()) return invalid_argument("'prompt' encodes to no tokens");
  const char* max_key = f.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  RME_ASSIGN_OR_RETURN(int64_t max_new,
                       f.integer(max_key, limits.default_max_tokens, 1, limits.max_new_tokens));
  r.params.max_new = static_cast<int>(max_new);
  RME_RETURN_IF_ERROR(sampling_fields(body, f, r.params.sampling));
  RME_ASSIGN_OR_RETURN(r.params.ignore_eos, f.boolean("ignore_eos", false));
  RME_ASSIGN_OR_RETURN(r.stop, stop_strings(body));
  if (chat) {
    RME_ASSIGN_OR_RETURN(r.logprobs, f.boolean("logprobs", false));
    RME_ASSIGN_OR_RETURN(int64_t top, f.integer("top_logprobs", 0, 0, kMaxTopLogprobs));
    if (f.has("top_logprobs") && !r.logprobs)
      return invalid_argument("'top_logprobs' needs \"logprobs\": true");
    if (r.logprobs) r.params.logprobs = static_cast<int>(top);
  } else {
    RME_ASSIGN_OR_RETURN(int64_t top, f.integer("logprobs", -1, 0, kMaxTopLogprobs));
    r.logprobs = top >= 0;
    r.params.logprobs = static_cast<int>(top);
    RME_ASSIGN_OR_RETURN(r.echo, f.boolean("echo", false));
    if (r.echo && r.logprobs)
      return invalid_argument(
          "'echo' with 'logprobs' is not supported (no prompt log-probabilities)");
    if (r.echo) r.echo_text = tok.decode(ids);
  }
  r.params.prompt = std::move(ids);
  return r;
}

std::string api_error(const std::string& message, const std::string& type) {
  return json{
      {"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

json logprobs_json(const ApiRequest& r, const Tokenizer& tok, const std::vector<TextToken>& tokens,
                   size_t offset_base) {
  if (!r.logprobs) return nullptr;
  auto bytes = [](const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(c);
    return b;
  };
  if (r.chat) {
    json content = json::array();
    for (const TextToken& t : tokens) {
      json top = json::array();
      for (const auto& [id, lp] : t.top) {
        const std::string s = tok.decode_token(t.prev, id);
        top.push_back({{"token", s}, {"logprob", lp}, {"bytes", bytes(s)}});
      }
      content.push_back({{"token", t.bytes},
                         {"logprob", t.logprob},
                         {"bytes", bytes(t.bytes)},
                         {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json toks = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  for (const TextToken& t : tokens) {
    toks.push_back(t.bytes);
    lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& [id, lp] : t.top) top[tok.decode_token(t.prev, id)] = lp;
    tops.push_back(top);
    offs.push_back(offset_base + t.offset);
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

json usage_json(int n_prompt, int n_out) {
  return {{"prompt_tokens", n_prompt},
          {"completion_tokens", n_out},
          {"total_tokens", n_prompt + n_out}};
}

json completion_body(const ApiRequest& r, const std::string& id, int64_t created,
                     const std::string& text, const char* finish, int n_prompt, int n_out,
                     json logprobs) {
  json choice = {{"index", 0}, {"finish_reason", finish}, {"logprobs", std::move(logprobs)}};
  if (r.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(n_prompt, n_out)}};
}

json chunk_body(const ApiRequest& r, const std::string& id, int64_t created,
                const std::string& text, const char* finish, json logprobs) {
  json choice = {{"index", 0},
                 {"finish_reason", finish ? json(finish) : json(nullptr)},
                 {"logprobs", std::move(logprobs)}};
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

}  // namespace rme
