// kernels: integer dot products of Q8_0 / Q4_0 weight rows with activations quantized on the fly
// to 8 bits per 32-element block — decode's hot loop for quantized models (AVX-512 VNNI), with a
// scalar reference it is tested against.
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/dtype.h"

namespace rme {

// x quantized per block of 32: q = round(x / d), d = max|x| / 127, plus each block's sum of q
// (integer kernels use unsigned weights and correct with it). Owns its buffers; reuse one per
// thread so steady-state decoding allocates nothing.
struct Q8Activations {
  std::vector<int8_t> q;
  std::vector<float> d, sum;
  void quantize(const float* x, int64_t k);  // k a multiple of 32
};

using DotQ8Fn = float (*)(const void* w, const int8_t* q, const float* d, const float* sum,
                          int64_t k);

// The scalar reference (exact integer block sums, scaled in f32).
DotQ8Fn dot_q8_ref(DType weights);
// The fastest kernel this CPU and the active ISA allow for `weights`, or nullptr when decode
// should keep f32 activations (non-quantized weights, no VNNI, integer kernels off).
DotQ8Fn dot_q8_best(DType weights);
// Turns integer decode kernels on/off at run time. Initially off unless RME_INT8=1 (they are not
// yet faster than the f32-activation kernels). Returns the previous state.
bool set_int8_activations(bool on);

}  // namespace rme
