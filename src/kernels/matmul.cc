// kernels: matmul driver — threading over output rows, row decode reuse across tokens.
#include "kernels/matmul.h"

#include <algorithm>
#include <vector>

#include "core/check.h"

namespace rme {

const RowKernels& row_kernels(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return row_kernels_avx512();
    case Isa::kAvx2:
      return row_kernels_avx2();
    case Isa::kScalar:
      break;
  }
  return row_kernels_ref();
}

namespace {
// active_isa() is one relaxed atomic load, so resolving per call is free and follows
// set_active_isa() in tests.
const RowKernels& active_kernels() { return row_kernels(active_isa()); }
}  // namespace

float dot_f32(const float* a, const float* b, int64_t k) {
  return active_kernels().dot[static_cast<int>(DType::kF32)](a, b, k);
}

void matmul(const MatView& w, const float* x, int64_t x_stride, int64_t n_tok, float* y,
            int64_t y_stride, ThreadPool& pool) {
  RME_CHECK(w.n_in % dtype_block_size(w.dtype) == 0);
  const RowKernels& kern = active_kernels();
  const auto dot = kern.dot[static_cast<int>(w.dtype)];
  const auto to_f32 = kern.to_f32[static_cast<int>(w.dtype)];
  const auto dotf = kern.dot[static_cast<int>(DType::kF32)];
  const size_t row_bytes = dtype_row_bytes(w.dtype, w.n_in);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const int64_t n_in = w.n_in;

  if (n_tok == 1) {
    pool.parallel_for(w.n_out, 16, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) y[r] = dot(base + r * row_bytes, x, n_in);
    });
    return;
  }
  // Prefill: decode each weight row to f32 once, then dot it with every token.
  pool.parallel_for(w.n_out, 4, [&](int64_t r0, int64_t r1, int) {
    thread_local std::vector<float> row;
    if (static_cast<int64_t>(row.size()) < n_in) row.resize(static_cast<size_t>(n_in));
    for (int64_t r = r0; r < r1; ++r) {
      to_f32(base + r * row_bytes, row.data(), n_in);
      for (int64_t t = 0; t < n_tok; ++t)
        y[t * y_stride + r] = dotf(row.data(), x + t * x_stride, n_in);
    }
  });
}

}  // namespace rme
