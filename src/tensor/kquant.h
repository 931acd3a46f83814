// tensor: llama.cpp's K-quant storage formats (Q4_K, Q5_K, Q6_K), read only: block layouts and a
// reference dequantization. rme computes in its own dtypes, so readers convert these at load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace rme {

// Super-blocks of 256 weights, as ggml lays them out (ggml-common.h):
//   Q4_K (144 bytes): f16 d, f16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32,
//        128 bytes of 4-bit quants; w = d * scale * q - dmin * min.
//   Q5_K (176 bytes): as Q4_K plus 32 bytes holding each weight's fifth bit.
//   Q6_K (210 bytes): 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 int8 scales (one per
//        16 weights), f16 d; w = d * scale * (q - 32).
enum class KQuant { kQ4_K, kQ5_K, kQ6_K };

inline constexpr int kKBlock = 256;  // weights per super-block

std::optional<KQuant> kquant_from_ggml(uint32_t ggml_type);  // 12, 13, 14
const char* kquant_name(KQuant t);                           // "Q4_K", ...
size_t kquant_block_bytes(KQuant t);
// Converts n weights (a multiple of kKBlock) of type t at src into f32.
void dequantize_kquant_row(KQuant t, const void* src, float* dst, int64_t n);

}  // namespace rme
