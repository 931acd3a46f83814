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

DotQ8Fn dot_q8_vnni(DType weights);  // dot_q8_vnni.cc

void Q8Activations::quantize(const float* x, int64_t k) {
  const int64_t nb = k / kQBlock;
  q.resize(static_cast<size_t>(k));
  d.resize(static_cast<size_t>(nb));
  sum.resize(static_cast<size_t>(nb));
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
std::atomic<bool>& int8_enabled() {
  // Off by default: measured no faster than the f32-activation kernels yet (docs/performance.md)
  // and less exact. RME_INT8=1 turns it on.
  static std::atomic<bool> on{[] {
    const char* env = std::getenv("RME_INT8");
    return env != nullptr && std::strcmp(env, "1") == 0;
  }()};
  return on;
}
}  // namespace

bool set_int8_activations(bool on) { return int8_enabled().exchange(on); }

DotQ8Fn dot_q8_best(DType t) {
  static const bool vnni =
      __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
  if (!vnni || active_isa() != Isa::kAvx512 || !int8_enabled().load(std::memory_order_relaxed))
    return nullptr;
  return dot_q8_vnni(t);
}

}  // namespace rme
