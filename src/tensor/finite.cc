// tensor: NaN/Inf scans per storage format.
#include "tensor/finite.h"

#include <cmath>
#include <cstring>

#include "tensor/kquant.h"

namespace rme {
namespace {

bool f16_bad(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return (h & 0x7C00) == 0x7C00;  // exponent all ones: Inf or NaN
}

bool bf16_bad(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return (h & 0x7F80) == 0x7F80;
}

}  // namespace

int64_t first_nonfinite(DType t, const void* data, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  switch (t) {
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        float v;
        std::memcpy(&v, p + 4 * i, 4);
        if (!std::isfinite(v)) return i;
      }
      return -1;
    case DType::kF16:
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i)
        if (t == DType::kF16 ? f16_bad(p + 2 * i) : bf16_bad(p + 2 * i)) return i;
      return -1;
    default:
      break;
  }
  // Quantized: where each block keeps its f16 scale (and min).
  const int64_t block = dtype_block_size(t);
  const size_t bytes = dtype_block_bytes(t);
  size_t d_at = 0;
  bool has_min = false;
  if (t == DType::kQ4_K || t == DType::kQ5_K) has_min = true;
  if (t == DType::kQ6_K) d_at = kQ6KBytes - 2;
  for (int64_t b = 0; b < n / block; ++b) {
    const uint8_t* blk = p + static_cast<size_t>(b) * bytes;
    if (f16_bad(blk + d_at) || (has_min && f16_bad(blk + 2))) return b * block;
  }
  return -1;
}

}  // namespace rme
