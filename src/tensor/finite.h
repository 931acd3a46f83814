// tensor: finding NaN and Inf in stored weights of any dtype (for quantized blocks, their float
// scales and mins: the only fields that can hold them).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace rme {

// The index of the first element of `n` stored values of type t at `data` (n a multiple of t's
// block size) whose value, or whose block's scale or min, is NaN or +-Inf (for a block: the
// index of its first element); -1 when all are finite.
int64_t first_nonfinite(DType t, const void* data, int64_t n);

}  // namespace rme
