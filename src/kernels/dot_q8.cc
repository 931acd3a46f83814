// kernels: activation quantization, the scalar integer dot products and kernel selection.
#include "kernels/dot_q8.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu.h"
#include "tensor/half.h"

namespace rme {

#if defined(__x86_64__)
DotQ8Fn dot_q8_vnni(DType weights);                   // dot_q8_vnni.cc
GemmQ8Fn gemm_q8_vnni(DType weights);                 // gemm_q8_avx512.cc
std::vector<DotQ8Fn> dot_q8_vnni_all(DType weights);  // dot_q8_vnni.cc
void quantize_q8_avx512(const float* x, int64_t k, int8_t* q, float* d, float* sum);
GemmQ8Fn gemm_int8_avx2(DType weights);                // gemm_int8_avx2.cc
GemmQ8Fn gemm_int8_avx512(DType weights);              // gemm_int8_avx512.cc (VNNI)
GemmQ8Fn gemm_int8_interleaved_avx512(DType weights);  // gemm_int8_avx512.cc (VNNI)
void quantize_q8_avx2(const float* x, int64_t k, int8_t* q, float* d,
                      float* sum);  // quantize_avx2.cc
#elif defined(__aarch64__)
DotQ8Fn dot_q8_neon(DType weights);  // dot_q8_neon.cc (DotProd)
#endif

void Q8Activations::resize(int64_t k) {
  q.resize(static_cast<size_t>(k));
  d.resize(static_cast<size_t>(k / kQBlock));
  sum.resize(static_cast<size_t>(k / kQBlock));
}

void Q8Activations::quantize(const float* x, int64_t k, Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx512 || isa == Isa::kAvx2) {
    resize(k);
    // Both are bit-identical to quantize_ref (tested).
    (isa == Isa::kAvx512 ? quantize_q8_avx512 : quantize_q8_avx2)(x, k, q.data(), d.data(),
                                                                  sum.data());
    return;
  }
#else
  (void)isa;
#endif
  quantize_ref(x, k);
}

void Q8Activations::quantize_ref(const float* x, int64_t k) {
  const int64_t nb = k / kQBlock;
  resize(k);
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kQBlock;
    float amax = 0;
    for (int i = 0; i < kQBlock; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float scale = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
    int s = 0;
    for (int i = 0; i < kQBlock; ++i) {
      const int v = static_cast<int>(std::lrintf(xb[i] * inv));
      q[b * kQBlock + i] = static_cast<int8_t>(v);
      s += v;
    }
    d[b] = scale;
    sum[b] = static_cast<float>(s);
  }
}

namespace {

float dot_q8_0_ref(const void* w, const int8_t* q, const float* d, const float*, int64_t k) {
  const auto* b = static_cast<const Q8_0Block*>(w);
  float acc = 0;
  for (int64_t ib = 0; ib < k / kQBlock; ++ib) {
    int s = 0;
    for (int i = 0; i < kQBlock; ++i) s += b[ib].q[i] * q[ib * kQBlock + i];
    acc += f16_to_f32(b[ib].d) * d[ib] * static_cast<float>(s);
  }
  return acc;
}

float dot_q4_0_ref(const void* w, const int8_t* q, const float* d, const float*, int64_t k) {
  const auto* b = static_cast<const Q4_0Block*>(w);
  float acc = 0;
  for (int64_t ib = 0; ib < k / kQBlock; ++ib) {
    int s = 0;
    for (int i = 0; i < kQBlock / 2; ++i) {
      s += ((b[ib].q[i] & 0x0f) - 8) * q[ib * kQBlock + i];
      s += ((b[ib].q[i] >> 4) - 8) * q[ib * kQBlock + i + 16];
    }
    acc += f16_to_f32(b[ib].d) * d[ib] * static_cast<float>(s);
  }
  return acc;
}

}  // namespace

DotQ8Fn dot_q8_ref(DType t) {
  return t == DType::kQ8_0 ? dot_q8_0_ref : t == DType::kQ4_0 ? dot_q4_0_ref : nullptr;
}

std::vector<DotQ8Fn> dot_q8_all(DType t) {
  std::vector<DotQ8Fn> all;
#if defined(__x86_64__)
  if (cpu_features().avx512vnni)
    for (DotQ8Fn f : dot_q8_vnni_all(t)) all.push_back(f);
#elif defined(__aarch64__)
  if (cpu_features().dotprod && dot_q8_neon(t)) all.push_back(dot_q8_neon(t));
#else
  (void)t;
#endif
  return all;
}

#if defined(__x86_64__)
namespace {
// The VNNI kernels run when the CPU has VNNI, the ISA is AVX-512 and int8 is on.
bool vnni_usable(const KernelConfig& cfg) {
  return cpu_features().avx512vnni && cfg.isa == Isa::kAvx512 && cfg.int8;
}
}  // namespace

DotQ8Fn dot_q8_best(const KernelConfig& cfg, DType t) {
  // AVX2 decodes through gemm_q8_invariant. AVX-512 CPUs without VNNI keep their f32 AVX-512
  // decode (not measured against the AVX2 integer kernel).
  return vnni_usable(cfg) ? dot_q8_vnni(t) : nullptr;
}

GemmQ8Fn gemm_q8_invariant(const KernelConfig& cfg, DType t) {
  if (cfg.isa == Isa::kAvx2 && cfg.int8) return gemm_int8_avx2(t);
  if (vnni_usable(cfg) && cfg.batch_invariant) return gemm_int8_avx512(t);
  return nullptr;
}

GemmQ8Fn gemm_q8_decode(const KernelConfig& cfg, DType t) {
  return vnni_usable(cfg) ? gemm_int8_avx512(t) : nullptr;
}

GemmQ8Fn gemm_q8_best(const KernelConfig& cfg, DType t) {
  if (vnni_usable(cfg)) return gemm_q8_vnni(t);
  return gemm_q8_invariant(cfg, t);
}

GemmQ8Fn gemm_q8_interleaved(const KernelConfig& cfg, DType t) {
  return vnni_usable(cfg) ? gemm_int8_interleaved_avx512(t) : nullptr;
}
#else
// AArch64 with DotProd: integer decode (sdot); prefill and the batch-invariant mode run the decode
// kernel per token (no NEON tile kernel yet). Elsewhere f32 activations.
DotQ8Fn dot_q8_best(const KernelConfig& cfg, DType t) {
#if defined(__aarch64__)
  if (cpu_features().dotprod && cfg.isa == Isa::kNeon && cfg.int8) return dot_q8_neon(t);
#endif
  (void)cfg;
  (void)t;
  return nullptr;
}
GemmQ8Fn gemm_q8_invariant(const KernelConfig&, DType) { return nullptr; }
GemmQ8Fn gemm_q8_decode(const KernelConfig&, DType) { return nullptr; }
GemmQ8Fn gemm_q8_best(const KernelConfig&, DType) { return nullptr; }
GemmQ8Fn gemm_q8_interleaved(const KernelConfig&, DType) { return nullptr; }
#endif

}  // namespace rme
