// tensor: dtype tables.
#include "tensor/dtype.h"

#include <cctype>
#include <string>

#include "core/check.h"

namespace rme {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
    case DType::kQ8_0:
      return "q8_0";
    case DType::kQ4_0:
      return "q4_0";
    case DType::kQ4_K:
      return "q4_k";
    case DType::kQ5_K:
      return "q5_k";
    case DType::kQ6_K:
      return "q6_k";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  std::string s(name);
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (int i = 0; i < kDTypeCount; ++i)
    if (dtype_name(static_cast<DType>(i)) == s) return static_cast<DType>(i);
  return std::nullopt;
}

int dtype_block_size(DType t) {
  return dtype_is_kquant(t) ? kKBlock : dtype_is_quantized(t) ? kQBlock : 1;
}

size_t dtype_block_bytes(DType t) {
  switch (t) {
    case DType::kF32:
      return 4;
    case DType::kF16:
      return 2;
    case DType::kBF16:
      return 2;
    case DType::kQ8_0:
      return sizeof(Q8_0Block);
    case DType::kQ4_0:
      return sizeof(Q4_0Block);
    case DType::kQ4_K:
      return 144;
    case DType::kQ5_K:
      return 176;
    case DType::kQ6_K:
      return 210;
  }
  return 0;
}

bool dtype_is_quantized(DType t) {
  return t == DType::kQ8_0 || t == DType::kQ4_0 || dtype_is_kquant(t);
}

bool dtype_is_kquant(DType t) {
  return t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K;
}

DType dtype_for_row(DType want, int64_t n) {
  if (n % dtype_block_size(want) == 0) return want;
  if (dtype_is_kquant(want) && n % kQBlock == 0) return DType::kQ8_0;
  return DType::kF16;
}

size_t dtype_row_bytes(DType t, int64_t n) {
  int bs = dtype_block_size(t);
  RME_CHECK(n % bs == 0) << "row of " << n << " elements is not a multiple of " << bs;
  return static_cast<size_t>(n / bs) * dtype_block_bytes(t);
}

}  // namespace rme
