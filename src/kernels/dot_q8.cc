// kernels: activation quantization, the scalar integer dot products and kernel selection.
#include "kernels/dot_q8.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu.h"
#include "tensor/half.h"

namespace rme {

DotQ8Fn dot_q8_vnni(DType weights);                   // dot_q8_vnni.cc
GemmQ8Fn gemm_q8_vnni(DType weights);                 // gemm_q8_avx512.cc
std::vector<DotQ8Fn> dot_q8_vnni_all(DType weights);  // dot_q8_vnni.cc
void quantize_q8_avx512(const float* x, int64_t k, int8_t* q, float* d, float* sum);
DotQ8Fn dot_q8_avx2(DType weights);    // dot_q8_avx2.cc
GemmQ8Fn gemm_q8_avx2(DType weights);  // dot_q8_avx2.cc
void quantize_q8_avx2(const float* x, int64_t k, int8_t* q, float* d, float* sum);

namespace {
bool cpu_has_vnni() {
  static const bool vnni =
      __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
  return vnni;
}
}  // namespace

void Q8Activations::resize(int64_t k) {
  q.resize(static_cast<size_t>(k));
  d.resize(static_cast<size_t>(k / kQBlock));
  sum.resize(static_cast<size_t>(k / kQBlock));
}

void Q8Activations::quantize(const float* x, int64_t k) {
  static const bool avx512 =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  const Isa isa = active_isa();
  if (isa == Isa::kScalar) return quantize_ref(x, k);
  resize(k);
  if (avx512 && isa == Isa::kAvx512) {
    quantize_q8_avx512(x, k, q.data(), d.data(), sum.data());
  } else {  // the AVX2 ISA (or AVX-512 without BW) implies AVX2 + FMA + F16C
    quantize_q8_avx2(x, k, q.data(), d.data(), sum.data());
  }
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

namespace {
std::atomic<Int8Mode>& int8_mode() {
  static std::atomic<Int8Mode> mode{[] {
    const char* env = std::getenv("RME_INT8");
    if (env != nullptr && std::strcmp(env, "0") == 0) return Int8Mode::kOff;
    return Int8Mode::kOn;
  }()};
  return mode;
}
}  // namespace

Int8Mode set_int8_mode(Int8Mode mode) { return int8_mode().exchange(mode); }

namespace {
bool int8_on() { return int8_mode().load(std::memory_order_relaxed) == Int8Mode::kOn; }
// The VNNI kernels run when the CPU has VNNI, the active ISA is AVX-512 and the mode is on.
bool int8_kernels_usable() { return cpu_has_vnni() && active_isa() == Isa::kAvx512 && int8_on(); }
bool cpu_has_avx2() {
  const std::vector<Isa> s = supported_isas();
  return std::find(s.begin(), s.end(), Isa::kAvx2) != s.end();
}
}  // namespace

std::vector<DotQ8Fn> dot_q8_all(DType t) {
  std::vector<DotQ8Fn> all;
  if (cpu_has_avx2() && dot_q8_avx2(t)) all.push_back(dot_q8_avx2(t));
  if (cpu_has_vnni())
    for (DotQ8Fn f : dot_q8_vnni_all(t)) all.push_back(f);
  return all;
}

DotQ8Fn dot_q8_best(DType t) {
  if (int8_kernels_usable()) return dot_q8_vnni(t);
  // AVX2 (vpmaddubsw): decode of Q4_0/Q8_0 with int8 activations when AVX2 is the active ISA.
  // AVX-512 CPUs without VNNI keep their f32 AVX-512 decode (not measured against this).
  if (active_isa() == Isa::kAvx2 && int8_on()) return dot_q8_avx2(t);
  return nullptr;
}

GemmQ8Fn gemm_q8_rows_best(DType t) {
  return active_isa() == Isa::kAvx2 && int8_on() ? gemm_q8_avx2(t) : nullptr;
}

GemmQ8Fn gemm_q8_best(DType t) { return int8_kernels_usable() ? gemm_q8_vnni(t) : nullptr; }

}  // namespace rme
