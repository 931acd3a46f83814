// model: TypeChoice parsing and the per-matrix pick of the K-quant "_M" mixes.
#include "model/type_choice.h"

#include <cctype>

namespace rme {

Result<TypeChoice> TypeChoice::parse(std::string_view name) {
  std::string s(name);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  TypeChoice t;
  if (s == "q4_k_m" || s == "q5_k_m") {
    t.base = s == "q4_k_m" ? DType::kQ4_K : DType::kQ5_K;
    t.medium = true;
    return t;
  }
  if (auto d = dtype_from_name(s)) {
    t.base = *d;
    return t;
  }
  return invalid_argument("type '" + std::string(name) + "' is not one of " + names());
}

const char* TypeChoice::names() {
  return "f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k, q4_k_m, q5_k_m";
}

std::string TypeChoice::name() const {
  if (!base) return "keep";
  return std::string(dtype_name(*base)) + (medium ? "_m" : "");
}

DType TypeChoice::pick(const WeightId& id, int n_layer, DType stored) const {
  if (!base) return stored;
  if (!medium || id.router) return *base;
  using K = WeightId::Kind;
  if (id.kind == K::kOutput) return DType::kQ6_K;
  const bool v_or_down = id.kind == K::kWv || id.kind == K::kDown || id.kind == K::kExpDown;
  if (!v_or_down) return *base;
  const int i = id.layer, n = n_layer;
  const bool more_bits = i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
  return more_bits ? DType::kQ6_K : *base;
}

}  // namespace rme
