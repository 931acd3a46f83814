// kernels: streaming read bandwidth.
#include "kernels/membw.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "core/timer.h"

namespace rme {

double measure_read_bandwidth(size_t bytes, int reps, ThreadPool& pool) {
  const size_t n = std::max<size_t>(bytes / sizeof(uint64_t), 1 << 16);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i * 0x9e3779b97f4a7c15ull;
  std::atomic<uint64_t> sink{0};
  std::vector<double> gbs;
  for (int r = 0; r < std::max(1, reps); ++r) {
    const double t0 = now_seconds();
    pool.parallel_for(static_cast<int64_t>(n / 4096), 1, [&](int64_t b, int64_t e, int) {
      // Eight independent accumulators keep the loads in flight; the sum is published so the
      // compiler cannot drop the loop.
      uint64_t s[8] = {};
      const uint64_t* p = buf.data() + b * 4096;
      const uint64_t* end = buf.data() + e * 4096;
      for (; p < end; p += 8)
        for (int k = 0; k < 8; ++k) s[k] += p[k];
      uint64_t t = 0;
      for (uint64_t v : s) t += v;
      sink.fetch_add(t, std::memory_order_relaxed);
    });
    gbs.push_back(static_cast<double>(n / 4096 * 4096 * sizeof(uint64_t)) / (now_seconds() - t0) /
                  1e9);
  }
  std::sort(gbs.begin(), gbs.end());
  return gbs[gbs.size() / 2];
}

}  // namespace rme
