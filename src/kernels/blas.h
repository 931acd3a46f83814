// kernels: prefill matrix-matrix products through OpenBLAS's sgemm when the process has it
// (Debian's libblas.so.3 alternative), run single-threaded inside rme's own thread pool.
#pragma once

#include <cstdint>

namespace rme {

// True when the BLAS loaded is OpenBLAS (not the slow reference BLAS). The first call loads it
// (setting OPENBLAS_CORETYPE on AVX-512 CPUs unless the user did: not thread-safe, so
// KernelConfig::best() makes that call at startup) and pins OpenBLAS to one thread: rme's pool
// provides the parallelism, so no second set of spinning threads competes for the cores.
bool fast_blas();

// C[M, N] = A[M, K] · B[N, K]ᵀ (row-major, leading dimensions in floats). Single-threaded.
void sgemm_nt(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc);

}  // namespace rme
