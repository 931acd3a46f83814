// formats: the GGUF v3 writer (metadata, aligned tensor data, atomic write).
#include <cstring>
#include <type_traits>

#include "core/file.h"
#include "formats/gguf.h"

namespace rme {
namespace {

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
using T = GgufValue::Type;
void put_type(std::string& s, T t) { put<uint32_t>(s, static_cast<uint32_t>(t)); }

void put_str(std::string& s, const std::string& v) {
  put<uint64_t>(s, v.size());
  s += v;
}
}  // namespace

namespace {
// A value's bytes: its type id, then the value (a string: length + bytes).
template <typename V>
std::string scalar(T type, const V& v) {
  std::string s;
  put_type(s, type);
  if constexpr (std::is_same_v<V, std::string>)
    put_str(s, v);
  else
    put(s, v);
  return s;
}
// An array's bytes: kArray, the element type, the count, the elements.
template <typename V>
std::string array(T elem, const std::vector<V>& v) {
  std::string s;
  put_type(s, T::kArray);
  put_type(s, elem);
  put<uint64_t>(s, v.size());
  for (const V& x : v) {
    if constexpr (std::is_same_v<V, std::string>)
      put_str(s, x);
    else
      put(s, x);
  }
  return s;
}
}  // namespace

void GgufWriter::set_u32(const std::string& k, uint32_t v) {
  kv_.emplace_back(k, scalar(T::kU32, v));
}
void GgufWriter::set_i32(const std::string& k, int32_t v) {
  kv_.emplace_back(k, scalar(T::kI32, v));
}
void GgufWriter::set_f32(const std::string& k, float v) { kv_.emplace_back(k, scalar(T::kF32, v)); }
void GgufWriter::set_bool(const std::string& k, bool v) {
  kv_.emplace_back(k, scalar(T::kBool, static_cast<uint8_t>(v)));
}
void GgufWriter::set_string(const std::string& k, const std::string& v) {
  kv_.emplace_back(k, scalar(T::kString, v));
}
void GgufWriter::set_strings(const std::string& k, const std::vector<std::string>& v) {
  kv_.emplace_back(k, array(T::kString, v));
}
void GgufWriter::set_f32s(const std::string& k, const std::vector<float>& v) {
  kv_.emplace_back(k, array(T::kF32, v));
}
void GgufWriter::set_i32s(const std::string& k, const std::vector<int32_t>& v) {
  kv_.emplace_back(k, array(T::kI32, v));
}

void GgufWriter::add_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                            const void* data, uint32_t file_align) {
  tensors_.push_back({name, dtype, shape, data, file_align, nullptr});
}

void GgufWriter::add_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                            Producer produce, uint32_t file_align) {
  tensors_.push_back({name, dtype, shape, nullptr, file_align, std::move(produce)});
}

Status GgufWriter::write(const std::string& path, uint32_t alignment) const {
  std::string head;
  put<uint32_t>(head, kGgufMagic);
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kv_.size() + 1);
  {
    put_str(head, "general.alignment");
    put<uint32_t>(head, 4);
    put<uint32_t>(head, alignment);
  }
  for (const auto& [k, v] : kv_) {
    put_str(head, k);
    head += v;
  }
  // Offsets are fixed-width fields, so the header's length does not depend on their values:
  // measure it first, then place tensors that ask for file alignment (an expert's range) there.
  auto header_with = [&](const std::vector<uint64_t>& offsets) {
    std::string h = head;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const auto& t = tensors_[i];
      put_str(h, t.name);
      put<uint32_t>(h, static_cast<uint32_t>(t.shape.size()));
      for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(h, *it);
      put<uint32_t>(h, ggml_type_of(t.dtype));
      put<uint64_t>(h, offsets[i]);
    }
    return h;
  };
  std::vector<uint64_t> offsets(tensors_.size(), 0), sizes;
  const uint64_t data_start = (header_with(offsets).size() + alignment - 1) / alignment * alignment;
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto& t = tensors_[i];
    if (t.file_align > alignment) {
      if (t.file_align % alignment != 0)
        return invalid_argument(path + ": tensor alignment " + std::to_string(t.file_align) +
                                " is not a multiple of " + std::to_string(alignment));
      const uint64_t a = t.file_align;
      offset = (data_start + offset + a - 1) / a * a - data_start;
    }
    offsets[i] = offset;
    sizes.push_back(Tensor{t.dtype, t.shape, nullptr}.n_bytes());
    offset += (sizes.back() + alignment - 1) / alignment * alignment;
  }
  RME_ASSIGN_OR_RETURN(auto w, AtomicFileWriter::create(path));
  RME_RETURN_IF_ERROR(w->write(header_with(offsets)));
  RME_RETURN_IF_ERROR(w->pad_to(alignment));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (tensors_[i].file_align > alignment) RME_RETURN_IF_ERROR(w->pad_to(tensors_[i].file_align));
    std::vector<std::shared_ptr<Buffer>> keep;  // a produced tensor's bytes, until written
    const void* data = tensors_[i].data;
    if (tensors_[i].produce) {
      RME_ASSIGN_OR_RETURN(data, tensors_[i].produce(keep));
    }
    RME_RETURN_IF_ERROR(w->write(data, sizes[i]));
    RME_RETURN_IF_ERROR(w->pad_to(alignment));
  }
  return w->commit();
}

}  // namespace rme
