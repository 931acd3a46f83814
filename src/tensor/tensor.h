// tensor: Tensor, a non-owning, row-major view (dtype, shape of rank <= 4, data pointer).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "tensor/dtype.h"

namespace rme {

// Shape legend used in comments throughout rme: T tokens, D model dim, F ffn dim, H / Hkv query
// and KV heads, Dh head dim, V vocab. Weights are [out, in]; shape[rank-1] is contiguous.
struct Tensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // not owned

  int rank() const { return static_cast<int>(shape.size()); }
  int64_t n_elements() const;
  int64_t rows() const;  // product of all but the last dim
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  size_t n_bytes() const;
  size_t row_bytes() const { return dtype_row_bytes(dtype, cols()); }
  const uint8_t* row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * row_bytes();
  }
};

std::string shape_string(const std::vector<int64_t>& shape);  // "[64, 32]"

// Owning, 64-byte-aligned byte buffer for tensors rme creates itself (converted or quantized
// weights). Movable, not copyable.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n_bytes);
  ~Buffer();
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  template <typename T>
  T* as() {
    return reinterpret_cast<T*>(data_);
  }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A tensor's bytes made when a writer reaches it, in buffers appended to `keep` (which the writer
// frees once the bytes are written): files are written one converted tensor at a time.
using TensorProducer =
    std::function<Result<const void*>(std::vector<std::shared_ptr<Buffer>>& keep)>;

}  // namespace rme
