// core: bounded JSON parsing and typed field access.
#include "core/json.h"

#include <cmath>
#include <optional>

namespace rme {

using nlohmann::json;

int json_nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

Result<json> parse_json(std::string_view text, const std::string& what, StatusCode code,
                        int max_depth) {
  const int depth = json_nesting_depth(text);
  if (depth > max_depth)
    return Status(code, what + ": JSON nested " + std::to_string(depth) +
                            " levels deep, more than the limit of " + std::to_string(max_depth));
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status(code, what + ": not valid JSON");
  return j;
}

bool JsonFields::has(const char* key) const {
  return j_.is_object() && j_.contains(key) && !j_[key].is_null();
}

Status JsonFields::error(const char* key, const std::string& want) const {
  return Status(code_, what_ + ": '" + key + "' must be " + want);
}

Result<bool> JsonFields::boolean(const char* key, bool def) const {
  if (!has(key)) return def;
  if (!j_[key].is_boolean()) return error(key, "a boolean");
  return j_[key].get<bool>();
}

Result<int64_t> JsonFields::integer(const char* key, int64_t def, int64_t lo, int64_t hi) const {
  if (!has(key)) return def;
  return required_integer(key, lo, hi);
}

Result<int64_t> JsonFields::required_integer(const char* key, int64_t lo, int64_t hi) const {
  const std::string range =
      "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (!has(key))
    return Status(code_ == StatusCode::kCorrupt ? StatusCode::kNotFound : code_,
                  what_ + ": '" + key + "' is missing");
  const json& v = j_[key];
  int64_t x = 0;
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      return error(key, range);
    x = v.get<int64_t>();
  } else if (v.is_number_float()) {  // 4.0 is an integer; 4.5 is not
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) return error(key, range);
    x = static_cast<int64_t>(d);
  } else {
    return error(key, range);
  }
  if (x < lo || x > hi) return error(key, range);
  return x;
}

Result<double> JsonFields::number(const char* key, double def, double lo, double hi) const {
  if (!has(key)) return def;
  const json& v = j_[key];
  const std::string range = "a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (!v.is_number()) return error(key, range);
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) return error(key, range);
  return d;
}

Result<std::string> JsonFields::string(const char* key, const std::string& def) const {
  if (!has(key)) return def;
  if (!j_[key].is_string()) return error(key, "a string");
  return j_[key].get<std::string>();
}

namespace {

// Each element of array a through conv (nullopt: rejected); fail() is the error for a wrong shape.
template <typename T, typename Conv, typename Fail>
Result<std::vector<T>> elements(const json& a, Conv conv, Fail fail) {
  if (!a.is_array()) return fail();
  std::vector<T> out;
  out.reserve(a.size());
  for (const json& v : a) {
    std::optional<T> x = conv(v);
    if (!x) return fail();
    out.push_back(*x);
  }
  return out;
}

}  // namespace

Result<std::vector<int>> JsonFields::int_array(const char* key, int64_t lo, int64_t hi) const {
  if (!has(key)) return std::vector<int>{};
  return int_array_value(j_[key], key, lo, hi);
}

Result<std::vector<int>> JsonFields::int_array_value(const json& a, const char* key, int64_t lo,
                                                     int64_t hi) const {
  return elements<int>(
      a,
      [&](const json& v) -> std::optional<int> {
        if (!v.is_number_integer()) return std::nullopt;
        if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(hi)
                                   : (v.get<int64_t>() < lo || v.get<int64_t>() > hi))
          return std::nullopt;
        return static_cast<int>(v.get<int64_t>());
      },
      [&] {
        return error(key, "an array of integers in [" + std::to_string(lo) + ", " +
                              std::to_string(hi) + "]");
      });
}

Result<std::vector<float>> JsonFields::float_array(const char* key, double lo, double hi) const {
  if (!has(key)) return std::vector<float>{};
  return elements<float>(
      j_[key],
      [&](const json& v) -> std::optional<float> {
        if (!v.is_number()) return std::nullopt;
        const double d = v.get<double>();
        if (!std::isfinite(d) || d < lo || d > hi) return std::nullopt;
        return static_cast<float>(d);
      },
      [&] {
        return error(
            key, "an array of numbers in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
      });
}

Result<std::vector<std::string>> JsonFields::string_array(const char* key) const {
  if (!has(key)) return std::vector<std::string>{};
  return elements<std::string>(
      j_[key],
      [](const json& v) -> std::optional<std::string> {
        if (!v.is_string()) return std::nullopt;
        return v.get<std::string>();
      },
      [&] { return error(key, "an array of strings"); });
}

}  // namespace rme
