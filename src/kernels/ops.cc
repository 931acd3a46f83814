// kernels: scalar implementations of the per-token ops (written so the compiler vectorizes them;
// they are a small fraction of a forward pass next to the matmuls).
#include "kernels/ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu.h"
#include "kernels/matmul.h"

namespace rme {

void rmsnorm(const float* x, const float* w, int64_t d, float eps, float* out) {
  float ss = 0;
  for (int64_t i = 0; i < d; ++i) ss += x[i] * x[i];
  float scale = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
  for (int64_t i = 0; i < d; ++i) out[i] = x[i] * scale * w[i];
}

void softmax(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void rope(float* x, int64_t n_head, int64_t head_dim, int64_t pos, const float* inv_freq,
          RopeStyle style) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    // float angle like llama2.c's run.c and HF (float32 inv_freq * position), so greedy
    // outputs match their references bit for bit on the pinned goldens.
    float angle = static_cast<float>(pos) * inv_freq[i];
    float c = std::cos(angle), s = std::sin(angle);
    for (int64_t h = 0; h < n_head; ++h) {
      float* v = x + h * head_dim;
      int64_t a = style == RopeStyle::kInterleaved ? 2 * i : i;
      int64_t b = style == RopeStyle::kInterleaved ? 2 * i + 1 : i + half;
      float v0 = v[a], v1 = v[b];
      v[a] = v0 * c - v1 * s;
      v[b] = v0 * s + v1 * c;
    }
  }
}

void attention_head(Isa isa, const float* q, const float* k, const float* v, int64_t stride,
                    int64_t n_kv, int64_t head_dim, float* scratch, float* out) {
  const int block0 = 0;
  attention_head_paged(isa, q, k, v, &block0, std::max<int64_t>(1, n_kv), 0, stride, n_kv, head_dim,
                       scratch, out);
}

void attention_head_paged(Isa isa, const float* q, const float* k, const float* v,
                          const int* blocks, int64_t block_size, int64_t block_stride,
                          int64_t stride, int64_t n_kv, int64_t head_dim, float* scratch,
                          float* out) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx512 && attention_head_paged_avx512(q, k, v, blocks, block_size, block_stride,
                                                         stride, n_kv, head_dim, scratch, out))
    return;
  if (isa == Isa::kAvx2 && attention_head_paged_avx2(q, k, v, blocks, block_size, block_stride,
                                                     stride, n_kv, head_dim, scratch, out))
    return;
#elif defined(__aarch64__)
  if (isa == Isa::kNeon && attention_head_paged_neon(q, k, v, blocks, block_size, block_stride,
                                                     stride, n_kv, head_dim, scratch, out))
    return;
#else
  (void)isa;
#endif
  attention_head_paged_ref(q, k, v, blocks, block_size, block_stride, stride, n_kv, head_dim,
                           scratch, out);
}

namespace {

// Positions [first, n_kv) through the block table; scratch holds n_kv - first scores.
void attention_range_ref(const float* q, const float* k, const float* v, const int* blocks,
                         int64_t block_size, int64_t block_stride, int64_t stride, int64_t first,
                         int64_t n_kv, int64_t head_dim, float* scratch, float* out) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  auto row = [&](const float* base, int64_t t) {
    return base + blocks[t / block_size] * block_stride + (t % block_size) * stride;
  };
  for (int64_t t = first; t < n_kv; ++t)
    scratch[t - first] = dot_f32(Isa::kScalar, q, row(k, t), head_dim) * scale;
  softmax(scratch, n_kv - first);
  std::fill(out, out + head_dim, 0.0f);
  for (int64_t t = first; t < n_kv; ++t) {
    const float* vt = row(v, t);
    const float a = scratch[t - first];
    for (int64_t i = 0; i < head_dim; ++i) out[i] += a * vt[i];
  }
}

}  // namespace

void attention_head_paged_ref(const float* q, const float* k, const float* v, const int* blocks,
                              int64_t block_size, int64_t block_stride, int64_t stride,
                              int64_t n_kv, int64_t head_dim, float* scratch, float* out) {
  attention_range_ref(q, k, v, blocks, block_size, block_stride, stride, 0, n_kv, head_dim, scratch,
                      out);
}

void attention_head_paged_window(Isa isa, const float* q, const float* k, const float* v,
                                 const int* blocks, int64_t block_size, int64_t block_stride,
                                 int64_t stride, int64_t first, int64_t n_kv, int64_t head_dim,
                                 float* scratch, float* out) {
  if (first <= 0) {
    attention_head_paged(isa, q, k, v, blocks, block_size, block_stride, stride, n_kv, head_dim,
                         scratch, out);
    return;
  }
  attention_range_ref(q, k, v, blocks, block_size, block_stride, stride, first, n_kv, head_dim,
                      scratch, out);
}

void attention_group_paged(Isa isa, const float* q, int64_t n_group, const float* k, const float* v,
                           const int* blocks, int64_t block_size, int64_t block_stride,
                           int64_t stride, int64_t first, int64_t n_kv, int64_t head_dim,
                           float* scratch, float* out) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx512 && first <= 0 &&
      attention_group_paged_avx512(q, n_group, k, v, blocks, block_size, block_stride, stride, n_kv,
                                   head_dim, scratch, out))
    return;
#endif
  for (int64_t g = 0; g < n_group; ++g)
    attention_head_paged_window(isa, q + g * head_dim, k, v, blocks, block_size, block_stride,
                                stride, first, n_kv, head_dim, scratch, out + g * head_dim);
}

}  // namespace rme
