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
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  std::string s(name);
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0})
    if (dtype_name(t) == s) return t;
  return std::nullopt;
}

int dtype_block_size(DType t) { return dtype_is_quantized(t) ? kQBlock : 1; }

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
  }
  return 0;
}

bool dtype_is_quantized(DType t) { return t == DType::kQ8_0 || t == DType::kQ4_0; }

size_t dtype_row_bytes(DType t, int64_t n) {
  int bs = dtype_block_size(t);
  RME_CHECK(n % bs == 0) << "row of " << n << " elements is not a multiple of " << bs;
  return static_cast<size_t>(n / bs) * dtype_block_bytes(t);
}

}  // namespace rme
