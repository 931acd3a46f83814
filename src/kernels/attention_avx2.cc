// kernels: attention_impl.h compiled for AVX2 + FMA.
#include "kernels/attention_impl.h"
#include "kernels/ops.h"
#include "kernels/simd_avx2.h"

namespace rme {

bool attention_head_paged_avx2(const float* q, const float* k, const float* v, const int* blocks,
                               int64_t block_size, int64_t block_stride, int64_t stride,
                               int64_t n_kv, int64_t head_dim, float* scratch, float* out) {
  return simd::attention_paged<simd::Avx2>(q, k, v, blocks, block_size, block_stride, stride, n_kv,
                                           head_dim, scratch, out);
}

}  // namespace rme
