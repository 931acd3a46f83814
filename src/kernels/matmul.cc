// kernels: matmul driver — threading over output rows, row decode reuse across tokens.
#include "kernels/matmul.h"

#include <algorithm>
#include <vector>

#include "core/check.h"
#include "kernels/blas.h"
#include "kernels/dot_kquant.h"
#include "kernels/dot_q8.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_f32.h"
#include "kernels/interleave.h"
#include "kernels/scratch.h"

namespace rme {

const RowKernels& row_kernels(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::kAvx512:
      return row_kernels_avx512();
    case Isa::kAvx2:
      return row_kernels_avx2();
#elif defined(__aarch64__)
    case Isa::kNeon:
      return row_kernels_neon();
#endif
    default:
      break;
  }
  return row_kernels_ref();
}

namespace {
// Below this many tokens the per-token dot products are as fast as a matrix product.
constexpr int64_t kBlasMinTokens = 4;
// Rows decoded per sgemm call. Each call repacks both operands (~15% of AVX2 prefill with 64
// rows); 128 rows halve that (F16 pp128 42 -> 52 tok/s, 2-core EPYC, alternating).
constexpr int64_t kPanelRows = 128;
// Every token's activations quantized (split across the pool: done serially it was ~25% of
// Q4_0 prefill), as Q8Activations (per 32) or Q8KActivations (per 256, K-quants). Valid until the
// calling thread's next call for the same type.
template <typename Acts = Q8Activations>
const Acts* quantize_tokens(Isa isa, const float* x, int64_t x_stride, int64_t n_tok, int64_t n_in,
                            ThreadPool& pool) {
  thread_local std::vector<Acts> xq;
  if (static_cast<int64_t>(xq.size()) < n_tok) xq.resize(n_tok);
  Acts* xs = xq.data();
  pool.parallel_for(n_tok, std::max<int64_t>(1, 8192 / n_in), [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) xs[t].quantize(x + t * x_stride, n_in, isa);
  });
  return xs;
}
// fn(r0, r1) over [0, n_out) split across the pool in whole 32-row units: the panel kernels
// repack 16-row groups and tile two at a time.
template <typename Fn>
void for_row_pairs(ThreadPool& pool, int64_t n_out, const Fn& fn) {
  pool.parallel_for((n_out + 31) / 32, 1,
                    [&](int64_t b0, int64_t b1, int) { fn(b0 * 32, std::min(n_out, b1 * 32)); });
}
}  // namespace

FloatRowsFn float_groups(const KernelConfig& cfg, DType t) {
#if defined(__x86_64__)
  if (cfg.isa == Isa::kAvx512 && t == DType::kF16) return f16_groups_avx512;
#endif
  (void)cfg;
  (void)t;
  return nullptr;
}

FloatRowsFn float_rows(Isa isa, DType t) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx2) return float_rows_avx2(t);
  if (isa == Isa::kAvx512) return float_rows_avx512(t);
#elif defined(__aarch64__)
  if (isa == Isa::kNeon) return float_rows_neon(t);
#endif
  (void)isa;
  (void)t;
  return nullptr;
}

namespace {
// BF16 weights under cfg.bf16 (gemm_bf16.h): every token's activations rounded to bf16 once
// (split across the pool), then one kernel for every n_tok over the rows; interleaved matrices
// (interleave.h) run their whole groups through the groups kernel and the rows after them
// through the rows kernel.
void matmul_bf16(const Bf16Kernels& bk, const MatView& w, const float* x, int64_t x_stride,
                 int64_t n_tok, float* y, int64_t y_stride, ThreadPool& pool) {
  const int64_t k = w.n_in;
  thread_local std::vector<uint16_t> xb_buf;
  if (static_cast<int64_t>(xb_buf.size()) < n_tok * k) xb_buf.resize(n_tok * k);
  uint16_t* xb = xb_buf.data();
  pool.parallel_for(n_tok, std::max<int64_t>(1, 8192 / k), [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) bk.round(x + t * x_stride, k, xb + t * k);
  });
  const size_t row_bytes = dtype_row_bytes(w.dtype, k);
  const auto* base = static_cast<const uint8_t*>(w.data);
  const int64_t grain = std::max<int64_t>(16, (int64_t{1} << 16) / k);
  if (w.layout == WeightLayout::kRows16) {
    const int64_t full = w.n_out / kInterleaveRows * kInterleaveRows;
    const int64_t units = (w.n_out + kInterleaveRows - 1) / kInterleaveRows;
    pool.parallel_for(units, std::max<int64_t>(1, grain / kInterleaveRows / n_tok),
                      [&](int64_t u0, int64_t u1, int) {
                        const int64_t r0 = u0 * kInterleaveRows;
                        const int64_t r1 = std::min(w.n_out, u1 * kInterleaveRows);
                        const int64_t g1 = std::min(r1, full);
                        if (g1 > r0)
                          bk.groups(base + r0 * row_bytes, row_bytes, g1 - r0, xb, k, n_tok, k,
                                    y + r0, y_stride);
                        if (r1 > full)
                          bk.rows(base + full * row_bytes, row_bytes, r1 - full, xb, k, n_tok, k,
                                  y + full, y_stride);
                      });
    return;
  }
  pool.parallel_for(
      w.n_out, std::max<int64_t>(16, grain / n_tok), [&](int64_t r0, int64_t r1, int) {
        bk.rows(base + r0 * row_bytes, row_bytes, r1 - r0, xb, k, n_tok, k, y + r0, y_stride);
      });
}
}  // namespace

namespace {
// An interleaved matrix (interleave.h): its whole groups through the interleaved kernel and the
// rows after them through the row kernel for the same bits, or, under a config without the
// interleaved kernel, the rows restored first and matmul'ed (a model interleaved for one config
// and run under another: tests).
void matmul_interleaved(const KernelConfig& cfg, const MatView& w, const float* x, int64_t x_stride,
                        int64_t n_tok, float* y, int64_t y_stride, ThreadPool& pool) {
  if (w.dtype == DType::kBF16)
    if (const Bf16Kernels* bk = bf16_kernels(cfg))
      return matmul_bf16(*bk, w, x, x_stride, n_tok, y, y_stride, pool);
  const size_t row_bytes = dtype_row_bytes(w.dtype, w.n_in);
  const auto* base = static_cast<const uint8_t*>(w.data);
  const int64_t full = w.n_out / kInterleaveRows * kInterleaveRows;
  const int64_t grain = std::max<int64_t>(16, (int64_t{1} << 16) / w.n_in);
  const int64_t units = (w.n_out + kInterleaveRows - 1) / kInterleaveRows;
  if (const FloatRowsFn fg = float_groups(cfg, w.dtype)) {
    // Float groups: f32 activations as they are; the rows after the groups through float_rows.
    const FloatRowsFn fr = float_rows(cfg.isa, w.dtype);
    pool.parallel_for(units, std::max<int64_t>(1, grain / kInterleaveRows / n_tok),
                      [&](int64_t u0, int64_t u1, int) {
                        const int64_t r0 = u0 * kInterleaveRows;
                        const int64_t r1 = std::min(w.n_out, u1 * kInterleaveRows);
                        const int64_t g1 = std::min(r1, full);
                        if (g1 > r0)
                          fg(base + r0 * row_bytes, row_bytes, g1 - r0, x, x_stride, n_tok, w.n_in,
                             y + r0, y_stride);
                        if (r1 > full)
                          fr(base + full * row_bytes, row_bytes, r1 - full, x, x_stride, n_tok,
                             w.n_in, y + full, y_stride);
                      });
    return;
  }
  // Each kernel pair computes a row the same way from either layout (dot_q8.h, dot_kquant.h).
  const bool kq = dtype_is_kquant(w.dtype);
  const GemmQ8Fn groups = kq ? nullptr : gemm_q8_interleaved(cfg, w.dtype);
  const GemmQ8Fn tail = kq ? nullptr : gemm_q8_decode(cfg, w.dtype);
  const GemmKFn kgroups = kq ? gemm_kquant_interleaved(cfg, w.dtype) : nullptr;
#if defined(__x86_64__)
  const GemmKFn ktail = kq ? gemm_kquant_avx512(w.dtype) : nullptr;
#else
  const GemmKFn ktail = nullptr;
#endif
  if (kq ? kgroups == nullptr : groups == nullptr || tail == nullptr) {
    thread_local std::vector<uint8_t> rows;
    rows.resize(w.n_out * row_bytes);
    uint8_t* dst = rows.data();  // this thread's buffer (the workers have their own)
    pool.parallel_for(
        (w.n_out + kInterleaveRows - 1) / kInterleaveRows, 1, [&](int64_t g0, int64_t g1, int) {
          const int64_t r0 = g0 * kInterleaveRows;
          deinterleave_rows16(w.dtype, base, w.n_out, w.n_in, r0,
                              std::min(w.n_out, g1 * kInterleaveRows), dst + r0 * row_bytes);
        });
    matmul(cfg, MatView{w.dtype, w.n_out, w.n_in, dst}, x, x_stride, n_tok, y, y_stride, pool);
    return;
  }
  const Q8Activations* xs =
      kq ? nullptr : quantize_tokens(cfg.isa, x, x_stride, n_tok, w.n_in, pool);
  const Q8KActivations* xk =
      kq ? quantize_tokens<Q8KActivations>(cfg.isa, x, x_stride, n_tok, w.n_in, pool) : nullptr;
  auto run = [&](bool whole, const uint8_t* at, int64_t rows, float* out) {  // quantized types
    if (kq)
      (whole ? kgroups : ktail)(at, row_bytes, rows, xk, n_tok, w.n_in, out, y_stride);
    else
      (whole ? groups : tail)(at, row_bytes, rows, xs, n_tok, w.n_in, out, y_stride);
  };
  pool.parallel_for(units, std::max<int64_t>(1, grain / kInterleaveRows / n_tok),
                    [&](int64_t u0, int64_t u1, int) {
                      const int64_t r0 = u0 * kInterleaveRows;
                      const int64_t r1 = std::min(w.n_out, u1 * kInterleaveRows);
                      const int64_t g1 = std::min(r1, full);
                      if (g1 > r0) run(true, base + r0 * row_bytes, g1 - r0, y + r0);
                      if (r1 > full) run(false, base + full * row_bytes, r1 - full, y + full);
                    });
}
}  // namespace

float dot_f32(Isa isa, const float* a, const float* b, int64_t k) {
  return row_kernels(isa).dot[static_cast<int>(DType::kF32)](a, b, k);
}

void matmul(const KernelConfig& cfg, const MatView& w, const float* x, int64_t x_stride,
            int64_t n_tok, float* y, int64_t y_stride, ThreadPool& pool) {
  RME_CHECK(w.n_in % dtype_block_size(w.dtype) == 0);
  if (w.layout == WeightLayout::kRows16)
    return matmul_interleaved(cfg, w, x, x_stride, n_tok, y, y_stride, pool);
  if (w.dtype == DType::kBF16)
    if (const Bf16Kernels* bk = bf16_kernels(cfg))
      return matmul_bf16(*bk, w, x, x_stride, n_tok, y, y_stride, pool);
  const RowKernels& kern = row_kernels(cfg.isa);
  const auto dot = kern.dot[static_cast<int>(w.dtype)];
  const auto to_f32 = kern.to_f32[static_cast<int>(w.dtype)];
  const auto dotf = kern.dot[static_cast<int>(DType::kF32)];
  const size_t row_bytes = dtype_row_bytes(w.dtype, w.n_in);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const int64_t n_in = w.n_in;

  // Rows per chunk: at least ~64K multiply-adds, so tiny matrices (small models, routers) run on
  // the calling thread instead of paying a hand-off per op.
  const int64_t grain = std::max<int64_t>(16, (int64_t{1} << 16) / std::max<int64_t>(1, n_in));
  if (const GemmKFn kq = gemm_kquant(cfg, w.dtype, n_tok)) {
    // K-quants: one integer kernel for any number of tokens, batch-invariant (dot_kquant.h).
    const Q8KActivations* xs =
        quantize_tokens<Q8KActivations>(cfg.isa, x, x_stride, n_tok, n_in, pool);
    // Rows in units of the AVX-512 kernel's 16-row groups (any unit is correct).
#if defined(__x86_64__)
    const int64_t unit = kq == gemm_kquant_avx512(w.dtype) ? 16 : 1;
#else
    const int64_t unit = 1;
#endif
    const int64_t units = (w.n_out + unit - 1) / unit;
    pool.parallel_for(
        units, std::max<int64_t>(1, grain / unit / n_tok), [&](int64_t u0, int64_t u1, int) {
          const int64_t r0 = u0 * unit, r1 = std::min(w.n_out, u1 * unit);
          kq(base + r0 * row_bytes, row_bytes, r1 - r0, xs, n_tok, n_in, y + r0, y_stride);
        });
    return;
  }
  GemmQ8Fn inv = gemm_q8_invariant(cfg, w.dtype);
  if (inv == nullptr && n_tok <= 2) inv = gemm_q8_decode(cfg, w.dtype);
  if (inv != nullptr) {
    // One integer kernel for any number of tokens, each output the same bits whatever the batch
    // (AVX2 Q4_0 and Q8_0; AVX-512 VNNI's in the batch-invariant mode): decode, prefill and the
    // batch-invariant mode alike. Rows in units of the kernel's group: 8 rows (AVX2), 16 (AVX-512).
    const Q8Activations* xs = quantize_tokens(cfg.isa, x, x_stride, n_tok, n_in, pool);
    const int64_t unit = cfg.isa == Isa::kAvx512 ? 16 : 8;
    const int64_t units = (w.n_out + unit - 1) / unit;
    pool.parallel_for(
        units, std::max<int64_t>(1, grain / unit / n_tok), [&](int64_t u0, int64_t u1, int) {
          const int64_t r0 = u0 * unit, r1 = std::min(w.n_out, u1 * unit);
          inv(base + r0 * row_bytes, row_bytes, r1 - r0, xs, n_tok, n_in, y + r0, y_stride);
        });
    return;
  }
  // Float types on AVX2, AVX-512 and NEON: tiles of 4 rows x 3 tokens whose every output is the
  // one-token kernel's — decode, the batch-invariant mode, and on AVX2/NEON F16/BF16 prefill,
  // where they beat sgemm on decoded panels (tinyllama FFN, F16: 117-121 vs 104-113 GFLOP/s). F32
  // prefill outside that mode keeps sgemm, which reads F32 weights in place; AVX-512 prefill
  // outside it keeps its repacked f32 panels (tinyllama F16 pp128 205 vs 165 tok/s, Zen 5).
  if (const FloatRowsFn rows = float_rows(cfg.isa, w.dtype);
      rows != nullptr &&
      (n_tok == 1 || cfg.batch_invariant || (w.dtype != DType::kF32 && cfg.isa != Isa::kAvx512))) {
    pool.parallel_for(w.n_out, std::max<int64_t>(16, grain / n_tok),
                      [&](int64_t r0, int64_t r1, int) {
                        rows(base + r0 * row_bytes, row_bytes, r1 - r0, x, x_stride, n_tok, n_in,
                             y + r0, y_stride);
                      });
    return;
  }
  if (n_tok == 1) {
    if (const DotQ8Fn dq = dot_q8_best(cfg, w.dtype)) {  // integer dot products, x quantized once
      thread_local Q8Activations xq;
      xq.quantize(x, n_in, cfg.isa);
      const int8_t* q = xq.q.data();
      const float* d = xq.d.data();
      const float* s = xq.sum.data();
      pool.parallel_for(w.n_out, grain, [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) y[r] = dq(base + r * row_bytes, q, d, s, n_in);
      });
      return;
    }
    pool.parallel_for(w.n_out, grain, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) y[r] = dot(base + r * row_bytes, x, n_in);
    });
    return;
  }
  if (cfg.batch_invariant) {
    // Every output bit-identical to the one-token kernel's. AVX-512, NEON: the one-token integer
    // kernel per token.
    if (const DotQ8Fn dq = dot_q8_best(cfg, w.dtype)) {
      const Q8Activations* xs = quantize_tokens(cfg.isa, x, x_stride, n_tok, n_in, pool);
      pool.parallel_for(w.n_out, grain, [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t t = 0; t < n_tok; ++t)
            y[t * y_stride + r] =
                dq(base + r * row_bytes, xs[t].q.data(), xs[t].d.data(), xs[t].sum.data(), n_in);
      });
      return;
    }
    // Scalar: the one-token kernel per token, over 16-row blocks that stay in L2 while the tokens
    // pass, so weights still come from memory once.
    pool.parallel_for(w.n_out, grain, [&](int64_t r0, int64_t r1, int) {
      for (int64_t b0 = r0; b0 < r1; b0 += 16)
        for (int64_t t = 0; t < n_tok; ++t)
          for (int64_t r = b0; r < std::min(r1, b0 + 16); ++r)
            y[t * y_stride + r] = dot(base + r * row_bytes, x + t * x_stride, n_in);
    });
    return;
  }
  const GemmQ8Fn gemm = gemm_q8_best(cfg, w.dtype);
  if (n_tok >= kBlasMinTokens && gemm != nullptr) {
    // Integer matrix product: tokens quantized once, rows in 32-row units (two 16-row panels).
    const Q8Activations* xs = quantize_tokens(cfg.isa, x, x_stride, n_tok, n_in, pool);
    for_row_pairs(pool, w.n_out, [&](int64_t r0, int64_t r1) {
      gemm(base + r0 * row_bytes, row_bytes, r1 - r0, xs, n_tok, n_in, y + r0, y_stride);
    });
    return;
  }
#if defined(__x86_64__)
  if (n_tok >= kBlasMinTokens && cfg.isa == Isa::kAvx512) {
    // Float matrix product on rme's own AVX-512 panels, rows in 32-row units.
    thread_local ScratchBuffer xp_buf;
    float* xp = xp_buf.get<float>(gemm_f32_packed_floats(n_tok, n_in));
    const int64_t tile = gemm_f32_tile_tokens();
    pool.parallel_for((n_tok + tile - 1) / tile, 1, [&](int64_t b0, int64_t b1, int) {
      gemm_f32_pack_tokens(x, x_stride, b0 * tile, std::min(n_tok, b1 * tile), n_in, xp);
    });
    for_row_pairs(pool, w.n_out, [&](int64_t r0, int64_t r1) {
      gemm_f32_avx512(to_f32, dotf, base + r0 * row_bytes, row_bytes, r1 - r0, n_in, x, x_stride,
                      xp, n_tok, y + r0, y_stride);
    });
    return;
  }
#endif
  if (n_tok >= kBlasMinTokens && cfg.blas && fast_blas()) {
    // Prefill as matrix products: each thread decodes panels of its rows to f32 (f32 weights are
    // used in place) and multiplies every token by the panel at once.
    pool.parallel_for(w.n_out, 32, [&](int64_t r0, int64_t r1, int) {
      thread_local std::vector<float> panel;
      for (int64_t p0 = r0; p0 < r1; p0 += kPanelRows) {
        const int64_t rows = std::min(kPanelRows, r1 - p0);
        const float* b = reinterpret_cast<const float*>(base + p0 * row_bytes);
        if (w.dtype != DType::kF32) {
          if (static_cast<int64_t>(panel.size()) < rows * n_in) panel.resize(rows * n_in);
          for (int64_t r = 0; r < rows; ++r)
            to_f32(base + (p0 + r) * row_bytes, panel.data() + r * n_in, n_in);
          b = panel.data();
        }
        sgemm_nt(n_tok, rows, n_in, x, x_stride, b, n_in, y + p0, y_stride);
      }
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
