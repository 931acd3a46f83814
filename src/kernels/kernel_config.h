// kernels: KernelConfig, which kernels a caller runs (ISA, int8 activations, batch invariance,
// BLAS prefill) — a value passed explicitly down to every kernel call; no process-wide setting.
#pragma once

#include <string>

#include "core/status.h"
#include "kernels/cpu.h"

namespace rme {

// Owned by value by whoever runs kernels (a Forward, a benchmark, a test); immutable once built,
// so any number of threads may read one. Building a config selects nothing: each kernel family
// resolves its function from the config when called (a switch on a few bytes).
struct KernelConfig {
  Isa isa = Isa::kScalar;  // must be one the CPU runs (cpu_has); best() picks the widest
  // Quantized weights meet activations quantized to int8 per 32-block (decode, and prefill where an
  // integer product exists): within 2% of the f32 logits (tested), 1.5-4x faster. false: f32
  // activations everywhere (the torch oracle's math).
  bool int8 = true;
  // Each token's output row bit-identical to a one-token call's, whatever it is batched with
  // (serving); costs prefill speed where the fastest product reorders sums (docs/performance.md).
  bool batch_invariant = false;
  // Opt-in precision trade (`--bf16`): BF16 weights (F16/F32 matrices converted at load:
  // model/bf16_weights.h) meet activations rounded to bf16 in AVX512-BF16 products, about 2x F16
  // prefill; bits per byte on rme-mini in docs/performance.md. Needs an AVX-512 ISA and a CPU
  // with AVX512-BF16 (with_bf16 refuses otherwise); off, BF16 weights run f32 activations.
  bool bf16 = false;
  // Float prefill through OpenBLAS's sgemm when that library is present (fast_blas()).
  bool blas = true;

  // The fastest configuration this CPU runs. The first call probes the CPU and loads OpenBLAS
  // (which reads OPENBLAS_CORETYPE from the environment as it loads: blas.cc), so a program calls
  // it before starting threads; later calls return the same value.
  static const KernelConfig& best();
  // best() adjusted by the environment, read here and only here (the CLI calls it once):
  // RME_ISA=scalar|avx2|avx512|neon, RME_INT8=0, RME_BLAS=0, RME_BF16=1. Fails on an ISA the CPU
  // lacks or an unknown name, saying which ones it has.
  static Result<KernelConfig> from_env();
  // The same with the ISA named by `isa` ("" keeps it): for a --isa flag.
  Result<KernelConfig> with_isa(const std::string& isa) const;

  // The same with bf16 products on (gemm_bf16.h); fails, naming what is missing, where the ISA
  // is not AVX-512 or the CPU lacks AVX512-BF16.
  Result<KernelConfig> with_bf16() const;

  std::string describe() const;  // "avx2, int8, blas" for logs and benchmark output
};

}  // namespace rme
