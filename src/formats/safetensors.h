// formats: safetensors — bounds-checked reader over a mapped file, and an atomic writer.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/status.h"
#include "tensor/tensor.h"

namespace rme {

// Owns the mapping; immutable; thread-safe to read. open() rejects headers that are too long,
// not JSON, name unknown dtypes, or whose offsets disagree with shapes or the file size.
class SafetensorsFile {
 public:
  static Result<std::unique_ptr<SafetensorsFile>> open(const std::string& path);

  const std::map<std::string, Tensor>& tensors() const { return tensors_; }
  const Tensor* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::shared_ptr<MappedFile>& file() const { return file_; }
  const std::string& path() const { return file_->path(); }

 private:
  SafetensorsFile() = default;
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// safetensors stores F32, F16 and BF16 for rme; quantized tensors are not representable.
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // borrowed until write returns
  size_t align = 0;  // > 1: start this tensor at a multiple of align (at most kPageAlign)
  TensorProducer produce = nullptr;  // set: the bytes are made when written (data unused)
};
inline constexpr size_t kPageAlign = 4096;
Status write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace rme
