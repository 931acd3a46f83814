// formats: GGUF parsing with every length, count and offset checked against the file size.
#include "formats/gguf.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <utility>

#include "core/check.h"
#include "tokenizer/utf8.h"

namespace rme {
namespace {

// ggml's names for its type ids (ggml.h), so an unsupported tensor is named as llama.cpp names it.
std::string ggml_type_name(uint32_t t) {
  // clang-format off
  static const char* const kNames[] = {
      "F32", "F16", "Q4_0", "Q4_1", "Q4_2 (removed)", "Q4_3 (removed)", "Q5_0", "Q5_1", "Q8_0",
      "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS",
      "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
      "BF16", "Q4_0_4_4 (removed)", "Q4_0_4_8 (removed)", "Q4_0_8_8 (removed)", "TQ1_0", "TQ2_0"};
  // clang-format on
  if (t < sizeof kNames / sizeof kNames[0])
    return std::string(kNames[t]) + " (" + std::to_string(t) + ")";
  return "id " + std::to_string(t);
}

size_t scalar_size(GgufValue::Type t) {
  using T = GgufValue::Type;
  switch (t) {
    case T::kU8:
    case T::kI8:
    case T::kBool:
      return 1;
    case T::kU16:
    case T::kI16:
      return 2;
    case T::kU32:
    case T::kI32:
    case T::kF32:
      return 4;
    case T::kU64:
    case T::kI64:
    case T::kF64:
      return 8;
    default:
      return 0;
  }
}

// Cursor over the mapped bytes; every read checks bounds and reports what it was reading.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n, std::string path) : p_(p), n_(n), path_(std::move(path)) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }
  Status need(size_t k, const std::string& what) const {
    if (k > remaining())
      return corrupt(path_ + ": truncated reading " + what + " at offset " + std::to_string(pos_) +
                     " (needs " + std::to_string(k) + " bytes, " + std::to_string(remaining()) +
                     " left)");
    return Status::Ok();
  }
  template <typename T>
  Status read(T& v, const std::string& what) {
    RME_RETURN_IF_ERROR(need(sizeof(T), what));
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }
  Status read_string(std::string& s, const std::string& what) {
    uint64_t len = 0;
    RME_RETURN_IF_ERROR(read(len, what + " length"));
    RME_RETURN_IF_ERROR(need(len, what));
    s.assign(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    if (!utf8_valid(s)) return corrupt(path_ + ": " + what + " is not valid UTF-8");
    return Status::Ok();
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  std::string path_;
};

Status read_scalar(Reader& r, GgufValue::Type t, GgufValue& v, const std::string& what) {
  using T = GgufValue::Type;
  switch (t) {
    case T::kU8: {
      uint8_t x = 0;
      RME_RETURN_IF_ERROR(r.read(x, what));
      v.scalar = uint64_t{x};
      break;
    }
    case T::kI8: {
      int8_t x = 0;
      RME_RETURN_IF_ERROR(r.read(x, what));
      v.scalar = int64_t{x};
      break;
    }
    case T::kU16: {
      uint16_t x = 0;
      RME_RETURN_IF_ERROR(r.read(x, what));
      v.scalar = uint64_t{x};
      break;
    }
    case T::kI16: {
      int16_t x = 0;
      RME_RETURN_IF_ERROR(r.read(x, what));
      v.scalar = int64_t{x};
      break;
    }
    case T::kU32: {
      uint32_t x = 0;
      RME_RETURN_IF_ERROR(r.read(x, what));
      v.scalar = uint64_t{x};
      break;
    }
    case T::kI32: {
      int32_t x = 0;
      RME_RETURN_IF_ERROR(r.read(x, what));
      v.scalar = int64_t{x};
      break;
    }
    case T::kU64: {
      uint64_t x = 0;
      RME_RETURN_IF_ERROR(r.read(x, what));
      v.scalar = x;
      break;
    }
    case T::kI64: {
      int64_t x = 0;
      RME_RETURN_IF_ERROR(r.read(x, what));
      v.scalar = x;
      break;
    }
    case T::kF32: {
      float x = 0;
      RME_RETURN_IF_ERROR(r.read(x, what));
      v.scalar = double{x};
      break;
    }
    case T::kF64: {
      double x = 0;
      RME_RETURN_IF_ERROR(r.read(x, what));
      v.scalar = x;
      break;
    }
    case T::kBool: {
      uint8_t x = 0;
      RME_RETURN_IF_ERROR(r.read(x, what));
      if (x > 1) return corrupt(what + ": bool value " + std::to_string(x) + " is not 0 or 1");
      v.scalar = x == 1;
      break;
    }
    case T::kString: {
      std::string s;
      RME_RETURN_IF_ERROR(r.read_string(s, what));
      v.scalar = std::move(s);
      break;
    }
    default:
      return corrupt(what + ": unknown value type " + std::to_string(static_cast<uint32_t>(t)));
  }
  v.type = t;
  return Status::Ok();
}

constexpr uint32_t kLastType = static_cast<uint32_t>(GgufValue::Type::kF64);
constexpr int kMaxArrayDepth = 8;

// The array body (element type, length, elements) after an array's type tag.
Status read_array(Reader& r, GgufValue& v, const std::string& what, int depth) {
  if (depth > kMaxArrayDepth)
    return corrupt(what + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth));
  uint32_t elem = 0;
  uint64_t count = 0;
  RME_RETURN_IF_ERROR(r.read(elem, what + " array element type"));
  RME_RETURN_IF_ERROR(r.read(count, what + " array length"));
  if (elem > kLastType)
    return corrupt(what + ": unknown array element type " + std::to_string(elem));
  auto et = static_cast<GgufValue::Type>(elem);
  v.type = GgufValue::Type::kArray;
  v.elem_type = et;
  // Each element takes at least min_size bytes: reject counts the file cannot hold before
  // reserving anything (a nested array: its element type and length, 12 bytes).
  const size_t min_size = et == GgufValue::Type::kString  ? 8
                          : et == GgufValue::Type::kArray ? 12
                                                          : scalar_size(et);
  if (count > r.remaining() / min_size)
    return corrupt(what + ": array length " + std::to_string(count) + " exceeds the " +
                   std::to_string(r.remaining()) + " bytes left in the file");
  GgufValue tmp;
  for (uint64_t i = 0; i < count; ++i) {
    if (et == GgufValue::Type::kArray) {
      GgufValue sub;
      RME_RETURN_IF_ERROR(read_array(r, sub, what + "[" + std::to_string(i) + "]", depth + 1));
      v.arrays.push_back(std::move(sub));
      continue;
    }
    RME_RETURN_IF_ERROR(read_scalar(r, et, tmp, what + "[" + std::to_string(i) + "]"));
    if (et == GgufValue::Type::kString) {
      v.strings.push_back(std::move(std::get<std::string>(tmp.scalar)));
    } else {
      v.numbers.push_back(tmp.as_double());
      v.ints.push_back(tmp.as_int());  // a float element: truncated, NaN and overflow to 0
    }
  }
  return Status::Ok();
}

Status read_value(Reader& r, GgufValue& v, const std::string& key, const std::string& path) {
  uint32_t type = 0;
  const std::string what = path + ": metadata '" + key + "'";
  RME_RETURN_IF_ERROR(r.read(type, what + " type"));
  if (type > kLastType) return corrupt(what + ": unknown value type " + std::to_string(type));
  if (static_cast<GgufValue::Type>(type) != GgufValue::Type::kArray)
    return read_scalar(r, static_cast<GgufValue::Type>(type), v, what);
  return read_array(r, v, what, 0);
}

}  // namespace

bool GgufValue::is_int() const {
  return type != Type::kArray &&
         (std::holds_alternative<uint64_t>(scalar) || std::holds_alternative<int64_t>(scalar));
}
int64_t GgufValue::as_int() const {
  if (std::holds_alternative<uint64_t>(scalar))
    return static_cast<int64_t>(std::get<uint64_t>(scalar));
  if (std::holds_alternative<int64_t>(scalar)) return std::get<int64_t>(scalar);
  if (std::holds_alternative<double>(scalar)) {
    const double d = std::get<double>(scalar);  // NaN and out-of-range doubles: no UB cast
    return d >= -9.2e18 && d <= 9.2e18 ? static_cast<int64_t>(d) : 0;
  }
  if (std::holds_alternative<bool>(scalar)) return std::get<bool>(scalar);
  return 0;
}
double GgufValue::as_double() const {
  if (std::holds_alternative<double>(scalar)) return std::get<double>(scalar);
  return static_cast<double>(as_int());
}

namespace {

// Tensor data must tile the data section as GGUF writers lay it out: no two tensors share bytes
// (an alias, or offsets zeroed), and no tensor is followed by more unused bytes than alignment
// padding explains (its type or shape then describes fewer bytes than it occupies: e.g. a type
// code changed from Q8_0 to Q4_0). Padding up to a page boundary before a page-aligned tensor
// is allowed (rme places experts so).
Status check_layout(const std::string& path, const std::vector<GgufTensorInfo>& tensors,
                    uint64_t data_start, uint64_t alignment, uint64_t file_size) {
  constexpr uint64_t kPage = 4096;
  std::vector<const GgufTensorInfo*> order;
  for (const GgufTensorInfo& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  auto bytes = [](const GgufTensorInfo& t) {
    return dtype_row_bytes(t.dtype, t.ne[0]) * static_cast<uint64_t>(t.view.n_elements() / t.ne[0]);
  };
  auto range = [&](const GgufTensorInfo& t) {
    return "'" + t.name + "' [" + std::to_string(data_start + t.offset) + ", " +
           std::to_string(data_start + t.offset + bytes(t)) + ")";
  };
  if (!order.empty()) {  // writers pad the last tensor to the alignment, and stop there
    const GgufTensorInfo& last = *order.back();
    const uint64_t end = data_start + last.offset + bytes(last);
    if (file_size - end >= alignment)
      return corrupt(path + ": the last tensor " + range(last) + " is followed by " +
                     std::to_string(file_size - end) + " unused bytes: its type " +
                     std::string(dtype_name(last.dtype)) +
                     " and shape describe fewer bytes than it occupies (a changed type code?)");
  }
  for (size_t i = 1; i < order.size(); ++i) {
    const GgufTensorInfo &a = *order[i - 1], &b = *order[i];
    const uint64_t a_end = a.offset + bytes(a);
    if (a_end > b.offset)
      return corrupt(path + ": tensors " + range(a) + " and " + range(b) +
                     " overlap (aliased data, or a type or shape that does not match the bytes)");
    const uint64_t gap = b.offset - a_end;
    const bool page_padding = (data_start + b.offset) % kPage == 0 && gap < kPage;
    if (gap >= alignment && !page_padding)
      return corrupt(path + ": tensor " + range(a) + " is followed by " + std::to_string(gap) +
                     " unused bytes: its type " + std::string(dtype_name(a.dtype)) +
                     " and shape describe fewer bytes than it occupies (a changed type code?)");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  auto g = std::unique_ptr<GgufFile>(new GgufFile());
  RME_ASSIGN_OR_RETURN(g->file_, MappedFile::open(path));
  Reader r(g->file_->data(), g->file_->size(), path);
  uint32_t magic = 0;
  RME_RETURN_IF_ERROR(r.read(magic, "magic"));
  if (magic != kGgufMagic) return corrupt(path + ": not a GGUF file (bad magic)");
  RME_RETURN_IF_ERROR(r.read(g->version_, "version"));
  if (g->version_ != 2 && g->version_ != 3)
    return unsupported(path + ": GGUF version " + std::to_string(g->version_) +
                       " (rme reads 2 and 3)");
  uint64_t n_tensors = 0, n_kv = 0;
  RME_RETURN_IF_ERROR(r.read(n_tensors, "tensor count"));
  RME_RETURN_IF_ERROR(r.read(n_kv, "metadata count"));
  // A metadata entry needs >= 13 bytes and a tensor info >= 24: bound counts by the file size.
  if (n_kv > r.remaining() / 13)
    return corrupt(path + ": metadata count " + std::to_string(n_kv) +
                   " is larger than the file can hold");
  if (n_tensors > r.remaining() / 24)
    return corrupt(path + ": tensor count " + std::to_string(n_tensors) +
                   " is larger than the file can hold");
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    RME_RETURN_IF_ERROR(r.read_string(key, path + ": metadata key #" + std::to_string(i)));
    GgufValue v;
    RME_RETURN_IF_ERROR(read_value(r, v, key, path));
    if (!g->kv_.emplace(key, std::move(v)).second)
      return corrupt(path + ": duplicate metadata key '" + key + "'");
  }
  uint64_t alignment = 32;
  if (const GgufValue* a = g->find("general.alignment")) {
    if (!a->is_int() || a->as_int() <= 0 || (a->as_int() & (a->as_int() - 1)) != 0 ||
        a->as_int() > (1 << 20))
      return corrupt(path + ": general.alignment must be a power of two <= 1 MiB");
    alignment = static_cast<uint64_t>(a->as_int());
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    RME_RETURN_IF_ERROR(r.read_string(t.name, path + ": tensor #" + std::to_string(i) + " name"));
    const std::string what = path + ": tensor '" + t.name + "'";
    uint32_t n_dims = 0;
    RME_RETURN_IF_ERROR(r.read(n_dims, what + " n_dims"));
    if (n_dims == 0 || n_dims > 4)
      return corrupt(what + ": n_dims " + std::to_string(n_dims) + " outside 1..4");
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = 0;
      RME_RETURN_IF_ERROR(r.read(ne, what + " dim"));
      if (ne == 0 || ne > (uint64_t{1} << 40) || n_el > (uint64_t{1} << 40) / ne)
        return corrupt(what + ": dimension " + std::to_string(ne) + " is absurd");
      n_el *= ne;
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    uint32_t type = 0;
    RME_RETURN_IF_ERROR(r.read(type, what + " type"));
    if (const std::optional<DType> d = dtype_from_ggml(type)) {
      t.dtype = *d;
    } else {
      return unsupported(what + ": tensor type " + ggml_type_name(type) +
                         " (rme reads F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
    }
    RME_RETURN_IF_ERROR(r.read(t.offset, what + " offset"));
    if (t.offset % alignment != 0)
      return corrupt(what + ": offset " + std::to_string(t.offset) +
                     " is not a multiple of alignment " + std::to_string(alignment));
    if (t.ne[0] % dtype_block_size(t.dtype) != 0)
      return corrupt(what + ": row length " + std::to_string(t.ne[0]) +
                     " is not a multiple of the " + std::string(dtype_name(t.dtype)) +
                     " block size");
    if (g->tensor_index_.count(t.name))
      return corrupt(path + ": duplicate tensor '" + t.name + "'");
    g->tensor_index_[t.name] = g->tensors_.size();
    g->tensors_.push_back(std::move(t));
  }
  const uint64_t data_start = (r.pos() + alignment - 1) / alignment * alignment;
  for (GgufTensorInfo& t : g->tensors_) {
    t.view.dtype = t.dtype;
    t.view.shape.assign(t.ne.rbegin(), t.ne.rend());
    const int64_t cols = t.ne[0], rows = t.view.n_elements() / cols;
    const uint64_t row_bytes = dtype_row_bytes(t.dtype, cols);
    const uint64_t bytes = row_bytes * static_cast<uint64_t>(rows);
    if (data_start > g->file_->size() || t.offset > g->file_->size() - data_start ||
        bytes > g->file_->size() - data_start - t.offset)
      return corrupt(
          path + ": tensor '" + t.name + "' data [" + std::to_string(data_start + t.offset) + ", " +
          std::to_string(data_start + t.offset + bytes) + ") lies past the end of the file (" +
          std::to_string(g->file_->size()) + " bytes)");
    t.view.data = g->file_->data() + data_start + t.offset;
  }
  RME_RETURN_IF_ERROR(check_layout(path, g->tensors_, data_start, alignment, g->file_->size()));
  return g;
}

namespace {
// ggml's tensor type ids (ggml.h, enum ggml_type) of rme's dtypes: the one table both ways.
constexpr std::pair<DType, uint32_t> kGgmlTypes[] = {
    {DType::kF32, 0},   {DType::kF16, 1},   {DType::kQ4_0, 2},  {DType::kQ8_0, 8},
    {DType::kQ4_K, 12}, {DType::kQ5_K, 13}, {DType::kQ6_K, 14}, {DType::kBF16, 30}};
static_assert(std::size(kGgmlTypes) == kDTypeCount, "every DType has a ggml id");
}  // namespace

std::optional<DType> dtype_from_ggml(uint32_t ggml_type) {
  for (const auto& [d, id] : kGgmlTypes)
    if (id == ggml_type) return d;
  return std::nullopt;
}

uint32_t ggml_type_of(DType t) {
  for (const auto& [d, id] : kGgmlTypes)
    if (d == t) return id;
  RME_CHECK(false) << "no ggml type for " << dtype_name(t);
  return 0;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace rme
