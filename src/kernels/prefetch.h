// kernels: a software prefetch cursor that spreads a byte range's cache lines over the last calls
// of a known number of calls.
#pragma once

#include <xmmintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace rme {

// Matrix kernels call next() at a steady rate inside a tile loop whose call count they know, so
// the weights they will pack next reach L2 while the current row pair computes (packing otherwise
// waits on DRAM line by line). The lines go out during the last calls only — at most two calls
// per line — because the tiles stream their tokens through L2 and would evict lines fetched
// early. Non-owning; one per thread.
class Prefetch {
 public:
  Prefetch(const void* begin, size_t bytes, int64_t n_calls)
      : p_(static_cast<const char*>(begin)),
        lines_(static_cast<int64_t>((bytes + 63) / 64)),
        window_(std::max<int64_t>(1, std::min(n_calls, 2 * lines_))),
        start_(n_calls - window_) {}

  // Rows [begin, end) of a matrix of rows `row_bytes` apart; an empty range prefetches nothing.
  static Prefetch rows(const uint8_t* w, size_t row_bytes, int64_t begin, int64_t end,
                       int64_t n_calls) {
    return Prefetch(w + begin * row_bytes, end > begin ? (end - begin) * row_bytes : 0, n_calls);
  }

  void next() {
    const int64_t c = call_++ - start_;
    if (c < 0 || issued_ >= lines_) return;
    const int64_t target = std::min(lines_, (lines_ * (c + 1) + window_ - 1) / window_);
    for (; issued_ < target; ++issued_) __builtin_prefetch(p_ + issued_ * 64, 0, 2);
  }

 private:
  const char* p_;
  int64_t lines_, window_, start_;
  int64_t call_ = 0, issued_ = 0;
};

}  // namespace rme
