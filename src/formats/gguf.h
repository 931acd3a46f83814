// formats: GGUF v2/v3 container — a bounds-checked reader over a mapped file and a writer.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/file.h"
#include "core/status.h"
#include "tensor/tensor.h"

namespace rme {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF", little-endian

// One metadata value. Arrays hold homogeneous scalars, strings or arrays.
struct GgufValue {
  enum class Type : uint32_t {
    kU8 = 0,
    kI8,
    kU16,
    kI16,
    kU32,
    kI32,
    kF32,
    kBool,
    kString,
    kArray,
    kU64,
    kI64,
    kF64,
  };
  Type type = Type::kU32;
  Type elem_type = Type::kU32;  // for arrays
  std::variant<uint64_t, int64_t, double, bool, std::string> scalar;
  std::vector<std::string> strings;  // string arrays
  std::vector<double> numbers;       // numeric arrays (exact for |x| < 2^53)
  std::vector<int64_t> ints;         // integer arrays, exact
  std::vector<GgufValue> arrays;     // arrays of arrays (nested to any depth)

  bool is_int() const;
  int64_t as_int() const;
  double as_double() const;
};

// ggml's tensor type id (ggml.h's enum ggml_type) of a dtype, and back (nullopt: a type rme does
// not read).
uint32_t ggml_type_of(DType t);
std::optional<DType> dtype_from_ggml(uint32_t ggml_type);

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // GGUF order: ne[0] is the contiguous dimension
  DType dtype;
  uint64_t offset;  // relative to the data section
  Tensor view;      // row-major view into the mapping (shape reversed from ne)
};

// Owns the mapping; immutable after open; thread-safe to read. open() fails with a Status naming
// the file, field and offending value for any malformed or truncated input.
class GgufFile {
 public:
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
  // A model that may be split (llama.cpp's gguf-split: name-0000i-of-0000N.gguf, split.count and
  // split.no in every shard, the model's metadata in the first): every shard in order, any one
  // of them named; one file when not split. Fails naming the shard that is missing, has another
  // split.count or split.no, or repeats a tensor of an earlier shard.
  static Result<std::vector<std::unique_ptr<GgufFile>>> open_split(const std::string& path);

  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const std::shared_ptr<MappedFile>& file() const { return file_; }
  const std::string& path() const { return file_->path(); }

 private:
  GgufFile() = default;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Accumulates metadata and tensors, then writes a GGUF v3 file atomically. Tensor data is
// borrowed (must stay alive until write()). Not thread-safe.
class GgufWriter {
 public:
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_strings(const std::string& key, const std::vector<std::string>& v);
  void set_f32s(const std::string& key, const std::vector<float>& v);
  void set_i32s(const std::string& key, const std::vector<int32_t>& v);
  // shape is row-major ([out, in]); written as GGUF ne (reversed).
  // file_align > alignment starts the tensor at a multiple of file_align in the file.
  void add_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                  const void* data, uint32_t file_align = 0);
  // A tensor whose bytes are made when write() reaches it, into buffers it appends to `keep`
  // (freed once written): the file's tensors never need to be in memory together. The bytes
  // must be dtype x shape's size.
  using Producer = std::function<Result<const void*>(std::vector<std::shared_ptr<Buffer>>& keep)>;
  void add_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                  Producer produce, uint32_t file_align = 0);
  Status write(const std::string& path, uint32_t alignment = 32) const;

 private:
  struct PendingTensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const void* data;
    uint32_t file_align;
    Producer produce;  // set: data is made at write time
  };
  std::vector<std::pair<std::string, std::string>> kv_;  // key, serialized (type + value)
  std::vector<PendingTensor> tensors_;
};

}  // namespace rme
