// kernels: OpenBLAS, loaded at first use (KernelConfig::best(), at startup: its kernel family is
// chosen through the environment before it loads), and the sgemm wrapper.
#include "kernels/blas.h"

#include <dlfcn.h>

#include <cstdlib>

#include "core/check.h"
#include "kernels/cpu.h"

namespace rme {
namespace {

// cblas_sgemm's signature with the CBLAS enums as ints (RowMajor 101, NoTrans 111, Trans 112).
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                         float, float*, int);

SgemmFn load_sgemm() {
  // OpenBLAS 0.3.21 (Debian 12) may file an AVX-512 CPU it does not know under Haswell and run
  // its AVX2 kernels; its SkylakeX kernels measured 1.45-1.5x faster prefill than those on Zen 5
  // (where, left alone, it picked Cooperlake's, as fast as SkylakeX's: docs/training.md). It reads
  // the choice when the library loads, hence the lazy load. A user's own OPENBLAS_CORETYPE wins.
  if (cpu_features().avx512) setenv("OPENBLAS_CORETYPE", "SKYLAKEX", /*overwrite=*/0);
  void* lib = nullptr;
  for (const char* name : {"libblas.so.3", "libopenblas.so.0"})
    if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
  if (lib == nullptr) return nullptr;
  using SetThreads = void (*)(int);
  auto set = reinterpret_cast<SetThreads>(dlsym(lib, "openblas_set_num_threads"));
  auto sgemm = reinterpret_cast<SgemmFn>(dlsym(lib, "cblas_sgemm"));
  if (set == nullptr || sgemm == nullptr) return nullptr;  // reference BLAS: slower than rme
  set(1);                                                  // rme's pool provides the parallelism
  return sgemm;
}

SgemmFn sgemm_fn() {
  static const SgemmFn f = load_sgemm();
  return f;
}

}  // namespace

bool fast_blas() { return sgemm_fn() != nullptr; }

void sgemm_nt(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc) {
  const SgemmFn f = sgemm_fn();
  RME_CHECK(f != nullptr);
  f(101, 111, 112, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1.0f, A,
    static_cast<int>(lda), B, static_cast<int>(ldb), 0.0f, C, static_cast<int>(ldc));
}

}  // namespace rme
