// kernels: the machine's streaming read bandwidth, measured the way a decode step reads weights
// (every thread streams its own contiguous part of a buffer much larger than the caches).
#pragma once

#include <cstddef>

#include "core/thread_pool.h"
#include "kernels/cpu.h"

namespace rme {

// Median GB/s (1e9 bytes/s) of `reps` passes reading `bytes` with the pool's threads, using
// `isa`'s widest loads. The buffer is allocated and touched once before timing.
double measure_read_bandwidth(size_t bytes, int reps, Isa isa, ThreadPool& pool);

}  // namespace rme
