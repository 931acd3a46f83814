// kernels: the bf16 products' dispatch and scalar reference (gemm_bf16.h).
#include "kernels/gemm_bf16.h"

#include "tensor/half.h"

namespace rme {

const Bf16Kernels* bf16_kernels(const KernelConfig& cfg) {
#if defined(__x86_64__)
  if (cfg.bf16 && cfg.isa == Isa::kAvx512 && cpu_features().avx512bf16)
    return &bf16_kernels_avx512();
#endif
  (void)cfg;
  return nullptr;
}

void bf16_round_ref(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

void bf16_rows_ref(const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint16_t* xb,
                   int64_t xb_stride, int64_t n_tok, int64_t k, float* y, int64_t y_stride) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* row = reinterpret_cast<const uint16_t*>(w + r * row_bytes);
    for (int64_t t = 0; t < n_tok; ++t) {
      double s = 0;  // double: more accurate than what it checks
      for (int64_t i = 0; i < k; ++i)
        s += static_cast<double>(bf16_to_f32(row[i])) * bf16_to_f32(xb[t * xb_stride + i]);
      y[t * y_stride + r] = static_cast<float>(s);
    }
  }
}

}  // namespace rme
