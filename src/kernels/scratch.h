// kernels: a growable 64-byte-aligned scratch buffer for per-thread kernel workspaces.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

#include "core/check.h"

namespace rme {

// Owns one aligned allocation that only grows (steady-state calls allocate nothing). Not
// thread-safe: keep one per thread (thread_local). Allocation failure is a bug-level CHECK, as
// for any std::vector growth in the engine.
class ScratchBuffer {
 public:
  // At least `bytes` bytes, 64-byte aligned; contents are unspecified after growth.
  template <typename T>
  T* get(size_t count) {
    const size_t bytes = count * sizeof(T);
    if (bytes > size_) {
      const size_t alloc = (bytes + 63) / 64 * 64;
      data_.reset(static_cast<std::byte*>(std::aligned_alloc(64, alloc)));
      RME_CHECK(data_ != nullptr);
      size_ = alloc;
    }
    return reinterpret_cast<T*>(data_.get());
  }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte, Free> data_;
  size_t size_ = 0;
};

}  // namespace rme
