// tensor: element types rme stores weights in, and their block layouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace rme {

// Quantized types use GGUF's block layouts so GGUF files map without conversion:
//   Q8_0: 32 elements = f16 scale d + 32 x int8 q;          x = d * q
//   Q4_0: 32 elements = f16 scale d + 16 bytes of nibbles;  x = d * (nibble - 8),
//         byte j holds element j (low nibble) and element j + 16 (high nibble).
//   Q4_K, Q5_K, Q6_K: llama.cpp's K-quant super-blocks of 256 elements (layouts in kquant.h).
enum class DType : uint8_t { kF32 = 0, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K, kQ5_K, kQ6_K };
inline constexpr int kDTypeCount = 8;  // tables indexed by DType have this many entries

inline constexpr int kQBlock = 32;   // elements per Q8_0 / Q4_0 block
inline constexpr int kKBlock = 256;  // elements per K-quant super-block

struct Q8_0Block {
  uint16_t d;  // f16 scale
  int8_t q[kQBlock];
};
struct Q4_0Block {
  uint16_t d;  // f16 scale
  uint8_t q[kQBlock / 2];
};
static_assert(sizeof(Q8_0Block) == 34);
static_assert(sizeof(Q4_0Block) == 18);

std::string_view dtype_name(DType t);                    // "f32", "q4_0", ...
std::optional<DType> dtype_from_name(std::string_view);  // inverse, case-insensitive
int dtype_block_size(DType t);                           // elements per block (1 for floats)
size_t dtype_block_bytes(DType t);                       // bytes per block
bool dtype_is_quantized(DType t);
bool dtype_is_kquant(DType t);  // Q4_K, Q5_K, Q6_K
// The type a row of n elements is stored in when `want` is asked for: want if n is a multiple of
// its block, else (as llama.cpp falls back) Q8_0 for a K-quant when n is a multiple of 32, else
// F16. Writers and converters all pick through this one rule.
DType dtype_for_row(DType want, int64_t n);
// Bytes for n elements; n must be a multiple of the block size (CHECKed).
size_t dtype_row_bytes(DType t, int64_t n);

}  // namespace rme
