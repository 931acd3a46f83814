// core: JSON parsing with a nesting limit, and typed field access that returns a Status instead
// of throwing (nlohmann's get<T>() and value() throw on a wrong type).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace rme {

// Deep enough for every real config, tokenizer and request; nlohmann parses, dumps and destroys
// recursively, so a few kilobytes of '[' would otherwise overflow the stack.
inline constexpr int kMaxJsonDepth = 64;

// The deepest nesting of arrays and objects in text (strings and escapes skipped). Linear,
// no recursion; malformed text still gets a depth (the parser rejects it after).
int json_nesting_depth(std::string_view text);

// Parses text; `what` names the source in errors ("config.json", "the request body"). Failures:
// kInvalidArgument for requests is the caller's choice, so the code is a parameter.
Result<nlohmann::json> parse_json(std::string_view text, const std::string& what,
                                  StatusCode code = StatusCode::kCorrupt,
                                  int max_depth = kMaxJsonDepth);

// Typed optional fields of an object: absent or null gives `def`; a wrong type or an out-of-range
// value gives an error of `code` naming "what: 'key'". Never throws.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string what, StatusCode code = StatusCode::kCorrupt)
      : j_(object), what_(std::move(what)), code_(code) {}

  bool has(const char* key) const;  // present and not null
  Result<bool> boolean(const char* key, bool def) const;
  Result<int64_t> integer(const char* key, int64_t def, int64_t lo, int64_t hi) const;
  Result<double> number(const char* key, double def, double lo, double hi) const;
  Result<std::string> string(const char* key, const std::string& def) const;
  // An integer that must be present.
  Result<int64_t> required_integer(const char* key, int64_t lo, int64_t hi) const;
  // Arrays of numbers; every element checked.
  Result<std::vector<int>> int_array(const char* key, int64_t lo, int64_t hi) const;
  Result<std::vector<float>> float_array(const char* key, double lo, double hi) const;
  Result<std::vector<std::string>> string_array(const char* key) const;
  // int_array's checks on a bare value (an element of a nested array), errors naming `key`.
  Result<std::vector<int>> int_array_value(const nlohmann::json& array, const char* key, int64_t lo,
                                           int64_t hi) const;

  Status error(const char* key, const std::string& want) const;
  const nlohmann::json& object() const { return j_; }

 private:
  const nlohmann::json& j_;
  std::string what_;
  StatusCode code_;
};

}  // namespace rme
