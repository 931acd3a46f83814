// kernels: scalar reference row kernels — the ground truth every SIMD path is tested against.
#include "kernels/matmul.h"
#include "tensor/half.h"
#include "tensor/quant.h"

namespace rme {
namespace {

float dot_f32_ref(const void* w, const float* x, int64_t k) {
  const float* a = static_cast<const float*>(w);
  double s = 0;  // double so the reference is more accurate than what it checks
  for (int64_t i = 0; i < k; ++i) s += static_cast<double>(a[i]) * x[i];
  return static_cast<float>(s);
}

float dot_f16_ref(const void* w, const float* x, int64_t k) {
  const uint16_t* a = static_cast<const uint16_t*>(w);
  double s = 0;
  for (int64_t i = 0; i < k; ++i) s += static_cast<double>(f16_to_f32(a[i])) * x[i];
  return static_cast<float>(s);
}

float dot_bf16_ref(const void* w, const float* x, int64_t k) {
  const uint16_t* a = static_cast<const uint16_t*>(w);
  double s = 0;
  for (int64_t i = 0; i < k; ++i) s += static_cast<double>(bf16_to_f32(a[i])) * x[i];
  return static_cast<float>(s);
}

float dot_q8_0_ref(const void* w, const float* x, int64_t k) {
  const auto* b = static_cast<const Q8_0Block*>(w);
  double s = 0;
  for (int64_t ib = 0; ib < k / kQBlock; ++ib) {
    double bs = 0;
    for (int i = 0; i < kQBlock; ++i) bs += b[ib].q[i] * static_cast<double>(x[ib * kQBlock + i]);
    s += bs * f16_to_f32(b[ib].d);
  }
  return static_cast<float>(s);
}

float dot_q4_0_ref(const void* w, const float* x, int64_t k) {
  const auto* b = static_cast<const Q4_0Block*>(w);
  double s = 0;
  for (int64_t ib = 0; ib < k / kQBlock; ++ib) {
    const float* xb = x + ib * kQBlock;
    double bs = 0;
    for (int j = 0; j < kQBlock / 2; ++j) {
      bs += (static_cast<int>(b[ib].q[j] & 0x0f) - 8) * static_cast<double>(xb[j]);
      bs += (static_cast<int>(b[ib].q[j] >> 4) - 8) * static_cast<double>(xb[j + kQBlock / 2]);
    }
    s += bs * f16_to_f32(b[ib].d);
  }
  return static_cast<float>(s);
}

// K-quants: each super-block decoded, then dotted in double.
template <DType T>
float dot_kquant_ref(const void* w, const float* x, int64_t k) {
  const auto* b = static_cast<const uint8_t*>(w);
  float wf[kKBlock];
  double s = 0;
  for (int64_t ib = 0; ib < k / kKBlock; ++ib) {
    dequantize_row(T, b + ib * dtype_block_bytes(T), wf, kKBlock);
    for (int i = 0; i < kKBlock; ++i) s += static_cast<double>(wf[i]) * x[ib * kKBlock + i];
  }
  return static_cast<float>(s);
}

template <DType T>
void to_f32_ref(const void* w, float* out, int64_t k) {
  dequantize_row(T, w, out, k);
}

}  // namespace

const RowKernels& row_kernels_ref() {
  static const RowKernels k = {
      {dot_f32_ref, dot_f16_ref, dot_bf16_ref, dot_q8_0_ref, dot_q4_0_ref,
       dot_kquant_ref<DType::kQ4_K>, dot_kquant_ref<DType::kQ5_K>, dot_kquant_ref<DType::kQ6_K>},
      {to_f32_ref<DType::kF32>, to_f32_ref<DType::kF16>, to_f32_ref<DType::kBF16>,
       to_f32_ref<DType::kQ8_0>, to_f32_ref<DType::kQ4_0>, to_f32_ref<DType::kQ4_K>,
       to_f32_ref<DType::kQ5_K>, to_f32_ref<DType::kQ6_K>},
  };
  return k;
}

}  // namespace rme
