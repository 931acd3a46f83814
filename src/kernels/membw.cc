// kernels: streaming read bandwidth.
#include "kernels/membw.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "core/timer.h"
#include "kernels/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace rme {
namespace {

// Sum of [p, end) in 64-bit lanes: eight independent accumulators keep the loads in flight.
uint64_t sum_generic(const uint64_t* p, const uint64_t* end) {
  uint64_t s[8] = {};
  for (; p < end; p += 8)
    for (int k = 0; k < 8; ++k) s[k] += p[k];
  uint64_t t = 0;
  for (uint64_t v : s) t += v;
  return t;
}

#if defined(__x86_64__)
// The same with full-width loads, so the loop is bound by memory rather than by instructions
// (the generic one runs at about 128 bits per load and under-read this machine's bandwidth: F16
// decode measured above it).
__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint64_t* p, const uint64_t* end) {
  __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
  for (; p + 32 <= end; p += 32) {
    a = _mm512_add_epi64(a, _mm512_loadu_si512(p));
    b = _mm512_add_epi64(b, _mm512_loadu_si512(p + 8));
    c = _mm512_add_epi64(c, _mm512_loadu_si512(p + 16));
    d = _mm512_add_epi64(d, _mm512_loadu_si512(p + 24));
  }
  alignas(64) uint64_t lanes[8];  // (GCC 12 warns falsely inside _mm512_reduce_add_epi64)
  _mm512_store_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
  uint64_t t = 0;
  for (uint64_t v : lanes) t += v;
  for (; p < end; ++p) t += *p;
  return t;
}

// AVX2 (256-bit loads): the generic loop read 15.1 GB/s on a 2-core EPYC where AVX2 Q4_0 decode
// itself streams more.
__attribute__((target("avx2"))) uint64_t sum_avx2(const uint64_t* p, const uint64_t* end) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (; p + 16 <= end; p += 16) {
    a = _mm256_add_epi64(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    b = _mm256_add_epi64(b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 4)));
    c = _mm256_add_epi64(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8)));
    d = _mm256_add_epi64(d, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 12)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes),
                     _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
  uint64_t t = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; p < end; ++p) t += *p;
  return t;
}
#endif

// The widest loads the active ISA has (NEON: the compiler vectorizes sum_generic to 128 bits).
uint64_t sum_best(Isa isa, const uint64_t* p, const uint64_t* end) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx512) return sum_avx512(p, end);
  if (isa == Isa::kAvx2) return sum_avx2(p, end);
#endif
  (void)isa;
  return sum_generic(p, end);
}

}  // namespace

double measure_read_bandwidth(size_t bytes, int reps, Isa isa, ThreadPool& pool) {
  const size_t n = std::max<size_t>(bytes / sizeof(uint64_t), 1 << 16);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i * 0x9e3779b97f4a7c15ull;
  std::atomic<uint64_t> sink{0};
  std::vector<double> gbs;
  for (int r = 0; r < std::max(1, reps); ++r) {
    const double t0 = now_seconds();
    pool.parallel_for(static_cast<int64_t>(n / 4096), 1, [&](int64_t b, int64_t e, int) {
      // The sum is published so the compiler cannot drop the loop.
      const uint64_t* p = buf.data() + b * 4096;
      const uint64_t* end = buf.data() + e * 4096;
      const uint64_t t = sum_best(isa, p, end);
      sink.fetch_add(t, std::memory_order_relaxed);
    });
    gbs.push_back(static_cast<double>(n / 4096 * 4096 * sizeof(uint64_t)) / (now_seconds() - t0) /
                  1e9);
  }
  std::sort(gbs.begin(), gbs.end());
  return gbs[gbs.size() / 2];
}

}  // namespace rme
