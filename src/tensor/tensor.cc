// tensor: Tensor helpers and the aligned Buffer.
#include "tensor/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace rme {

int64_t Tensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t Tensor::rows() const {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) n *= shape[i];
  return n;
}

size_t Tensor::n_bytes() const { return static_cast<size_t>(rows()) * row_bytes(); }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Buffer::Buffer(size_t n_bytes) : size_(n_bytes) {
  size_t alloc = (n_bytes + 63) / 64 * 64;
  data_ = static_cast<uint8_t*>(std::aligned_alloc(64, alloc == 0 ? 64 : alloc));
  if (data_ == nullptr) throw std::bad_alloc();
  std::memset(data_, 0, alloc == 0 ? 64 : alloc);
}

Buffer::~Buffer() { std::free(data_); }

Buffer::Buffer(Buffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(o.size_) {}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    std::free(data_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = o.size_;
  }
  return *this;
}

}  // namespace rme
