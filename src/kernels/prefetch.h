// kernels: a software prefetch cursor that walks a byte range one cache line per call.
#pragma once

#include <xmmintrin.h>

#include <cstddef>
#include <cstdint>

namespace rme {

// Non-owning; one per thread. Matrix kernels call next() at a steady rate inside compute loops so
// the weights they will pack next arrive in L2 while the current tile runs (their packing read
// DRAM at a fraction of its bandwidth: one core's loads stall per line otherwise).
class Prefetch {
 public:
  Prefetch(const void* begin, size_t bytes)
      : p_(static_cast<const char*>(begin)), end_(p_ + bytes) {}
  void next() {
    if (p_ < end_) {
      _mm_prefetch(p_, _MM_HINT_T1);
      p_ += 64;
    }
  }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace rme
