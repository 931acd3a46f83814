// formats: NumPy .npy writer for float32 arrays (rme logits --out).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace rme {

// Writes a C-order little-endian float32 array of the given shape (format version 1.0).
Status write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);
// Reads a file written by write_npy_f32 (tests and cross-checks).
Result<std::vector<float>> read_npy_f32(const std::string& path, std::vector<int64_t>* shape);

}  // namespace rme
