// kernels: the small per-token ops of a Llama layer (RMSNorm, RoPE, softmax, SwiGLU, attention).
#pragma once

#include <cstdint>

#include "kernels/cpu.h"

namespace rme {

// out[D] = x[D] / sqrt(mean(x²) + eps) * w[D]   (out may alias x)
void rmsnorm(const float* x, const float* w, int64_t d, float eps, float* out);

// In-place softmax over x[n].
void softmax(float* x, int64_t n);

// gate[F] = silu(gate) * up   (SwiGLU's elementwise half)
void silu_mul(float* gate, const float* up, int64_t n);

// How a head's dimensions are paired for rotation.
enum class RopeStyle {
  kInterleaved,  // pairs (2i, 2i+1): Meta / llama2.c / GGUF llama layout
  kHalf,         // pairs (i, i + Dh/2): Hugging Face (rotate_half) layout
};

// Rotates n_head heads of head_dim at x (contiguous) for position pos. inv_freq[Dh/2] holds the
// per-pair angular frequency (rope_theta and any scaling already applied).
void rope(float* x, int64_t n_head, int64_t head_dim, int64_t pos, const float* inv_freq,
          RopeStyle style);

// Attention of one query head over n_kv cached positions (the caller applies causality by
// choosing n_kv).
//   q[Dh]; k, v: n_kv rows of Dh floats, `stride` floats apart; scratch[n_kv]; out[Dh].
void attention_head(Isa isa, const float* q, const float* k, const float* v, int64_t stride,
                    int64_t n_kv, int64_t head_dim, float* scratch, float* out);

// The same over a paged cache: position t lives in block blocks[t / block_size], row
// t % block_size, at k + blocks[..] * block_stride + row * stride (likewise v). Positions are
// visited in the same order as attention_head, so the result is bit-identical to it for the same
// rows however they are paged. With isa AVX-512 and head_dim a multiple of 16 up to 128 it runs
// attention_head_paged_avx512, with AVX2 (NEON) and head_dim a multiple of 8 (4) up to 128
// attention_head_paged_avx2 (_neon) — all agree with the reference to float rounding — else the
// reference.
void attention_head_paged(Isa isa, const float* q, const float* k, const float* v,
                          const int* blocks, int64_t block_size, int64_t block_stride,
                          int64_t stride, int64_t n_kv, int64_t head_dim, float* scratch,
                          float* out);

// As attention_head_paged over positions [first, n_kv) only (a sliding window). first 0 is
// attention_head_paged; otherwise the scalar reference runs (windows bind only past W positions:
// SIMD kernels for them wait for a model that needs the speed).
void attention_head_paged_window(Isa isa, const float* q, const float* k, const float* v,
                                 const int* blocks, int64_t block_size, int64_t block_stride,
                                 int64_t stride, int64_t first, int64_t n_kv, int64_t head_dim,
                                 float* scratch, float* out);

// n_group query heads (q and out: n_group x head_dim, head after head) that share one K/V head
// (GQA): n_group calls of attention_head_paged_window, except that with isa AVX-512, first 0,
// n_group 4 or 8 and head_dim 64 or 128 one kernel reads each cache row once for the group
// (attention_group_paged_avx512; it agrees with the per-head kernels to float rounding, and a
// given (head, sequence) gets the same bits from it in any batch). scratch: n_group x n_kv.
void attention_group_paged(Isa isa, const float* q, int64_t n_group, const float* k, const float* v,
                           const int* blocks, int64_t block_size, int64_t block_stride,
                           int64_t stride, int64_t first, int64_t n_kv, int64_t head_dim,
                           float* scratch, float* out);
bool attention_group_paged_avx512(const float* q, int64_t n_group, const float* k, const float* v,
                                  const int* blocks, int64_t block_size, int64_t block_stride,
                                  int64_t stride, int64_t n_kv, int64_t head_dim, float* scratch,
                                  float* out);

// The scalar reference of attention_head_paged.
void attention_head_paged_ref(const float* q, const float* k, const float* v, const int* blocks,
                              int64_t block_size, int64_t block_stride, int64_t stride,
                              int64_t n_kv, int64_t head_dim, float* scratch, float* out);
// The AVX-512 kernel; returns false (doing nothing) for a head_dim it does not handle or n_kv 0.
// The caller checks the CPU.
bool attention_head_paged_avx512(const float* q, const float* k, const float* v, const int* blocks,
                                 int64_t block_size, int64_t block_stride, int64_t stride,
                                 int64_t n_kv, int64_t head_dim, float* scratch, float* out);

// The AVX2 and NEON instances of attention_impl.h; false (doing nothing) like the AVX-512 kernel.
bool attention_head_paged_avx2(const float* q, const float* k, const float* v, const int* blocks,
                               int64_t block_size, int64_t block_stride, int64_t stride,
                               int64_t n_kv, int64_t head_dim, float* scratch, float* out);
bool attention_head_paged_neon(const float* q, const float* k, const float* v, const int* blocks,
                               int64_t block_size, int64_t block_stride, int64_t stride,
                               int64_t n_kv, int64_t head_dim, float* scratch, float* out);

}  // namespace rme
