// kernels: OpenBLAS detection and the sgemm wrapper.
#include "kernels/blas.h"

#include <cblas.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

namespace rme {

bool fast_blas() {
  static const bool ok = [] {
    const char* env = std::getenv("RME_BLAS");
    if (env != nullptr && std::strcmp(env, "0") == 0) return false;
    using SetThreads = void (*)(int);
    auto* set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    if (set == nullptr) return false;  // reference BLAS: slower than rme's own loop
    set(1);
    return true;
  }();
  return ok;
}

void sgemm_nt(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N),
              static_cast<int>(K), 1.0f, A, static_cast<int>(lda), B, static_cast<int>(ldb), 0.0f,
              C, static_cast<int>(ldc));
}

}  // namespace rme
