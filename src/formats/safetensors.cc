// formats: safetensors parsing and writing.
#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <tuple>
#include <vector>

#include "core/json.h"

namespace rme {
namespace {

using json = nlohmann::json;
constexpr uint64_t kMaxHeader = 100u << 20;  // the format's own 100 MB limit

bool dtype_from_st(const std::string& s, DType& out) {
  if (s == "F32")
    out = DType::kF32;
  else if (s == "F16")
    out = DType::kF16;
  else if (s == "BF16")
    out = DType::kBF16;
  else
    return false;
  return true;
}
const char* st_from_dtype(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    default:
      return nullptr;
  }
}

}  // namespace

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  auto st = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  RME_ASSIGN_OR_RETURN(st->file_, MappedFile::open(path));
  const size_t size = st->file_->size();
  if (size < 8)
    return corrupt(path + ": truncated: " + std::to_string(size) + " bytes, header length needs 8");
  uint64_t n;
  std::memcpy(&n, st->file_->data(), 8);
  if (n > kMaxHeader || n > size - 8)
    return corrupt(path + ": header length " + std::to_string(n) + " exceeds " +
                   (n > kMaxHeader ? "the 100 MB limit" : "the file size " + std::to_string(size)));
  const char* hp = reinterpret_cast<const char*>(st->file_->data() + 8);
  RME_ASSIGN_OR_RETURN(json h, parse_json(std::string_view(hp, n), path + ": header"));
  if (!h.is_object()) return corrupt(path + ": header is not a JSON object (or not valid UTF-8)");
  const uint8_t* data = st->file_->data() + 8 + n;
  const uint64_t data_size = size - 8 - n;
  std::vector<std::tuple<uint64_t, uint64_t, std::string>> ranges;  // [begin, end), name
  for (const auto& [name, info] : h.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) return corrupt(path + ": __metadata__ is not an object");
      for (const auto& [k, v] : info.items())
        if (v.is_string()) st->metadata_[k] = v.get<std::string>();
      continue;
    }
    const std::string what = path + ": tensor '" + name + "'";
    if (!info.is_object() || !info.contains("dtype") || !info["dtype"].is_string() ||
        !info.contains("shape") || !info["shape"].is_array() || !info.contains("data_offsets") ||
        !info["data_offsets"].is_array() || info["data_offsets"].size() != 2)
      return corrupt(what + ": entry needs dtype, shape and two data_offsets");
    Tensor t;
    const std::string dt = info["dtype"].get<std::string>();
    if (dt == "U8" && name.rfind("__pad", 0) == 0) continue;  // alignment filler (rme's writer)
    if (!dtype_from_st(dt, t.dtype))
      return unsupported(what + ": dtype " + dt + " (rme reads F32, F16, BF16)");
    uint64_t n_el = 1;
    for (const auto& d : info["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 40))
        return corrupt(what + ": shape entry is not a sane non-negative integer");
      uint64_t v = d.get<uint64_t>();
      if (v != 0 && n_el > (uint64_t{1} << 40) / v)
        return corrupt(what + ": shape is absurdly large");
      n_el *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    if (t.shape.size() > 4)
      return corrupt(what + ": rank " + std::to_string(t.shape.size()) + " > 4");
    const json& off = info["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      return corrupt(what + ": data_offsets are not non-negative integers");
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    const uint64_t expect = n_el * dtype_block_bytes(t.dtype);
    if (b > e || e > data_size)
      return corrupt(what + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                     ") outside the data section of " + std::to_string(data_size) + " bytes");
    if (e - b != expect)
      return corrupt(what + ": data_offsets span " + std::to_string(e - b) + " bytes, shape " +
                     shape_string(t.shape) + " " + dt + " needs " + std::to_string(expect));
    t.data = data + b;
    st->tensors_.emplace(name, std::move(t));
    if (e > b) ranges.emplace_back(b, e, name);
  }
  // No two tensors share bytes (the format indexes each byte of the data section once): an
  // alias or overlap means a damaged header, and writes through one would read as the other.
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    const auto& [b0, e0, n0] = ranges[i - 1];
    const auto& [b1, e1, n1] = ranges[i];
    if (b1 < e0)
      return corrupt(path + ": tensors '" + n0 + "' [" + std::to_string(b0) + ", " +
                     std::to_string(e0) + ") and '" + n1 + "' [" + std::to_string(b1) + ", " +
                     std::to_string(e1) + ") overlap (a damaged header)");
  }
  return st;
}

const Tensor* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Status write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  bool aligned = false;
  std::vector<size_t> sizes, pads;  // pads[i]: filler bytes written before tensor i
  for (const auto& t : tensors) {
    const char* dt = st_from_dtype(t.dtype);
    if (dt == nullptr)
      return invalid_argument(path + ": tensor '" + t.name + "': safetensors cannot store " +
                              std::string(dtype_name(t.dtype)));
    // The format forbids holes in the data section, so alignment gaps are U8 filler tensors.
    uint64_t pad = t.align > 1 ? (t.align - off % t.align) % t.align : 0;
    aligned |= t.align > 1;
    if (pad > 0) {
      h["__pad" + std::to_string(pads.size())] = {
          {"dtype", "U8"}, {"shape", {pad}}, {"data_offsets", {off, off + pad}}};
      off += pad;
    }
    pads.push_back(pad);
    Tensor view{t.dtype, t.shape, nullptr};
    sizes.push_back(view.n_bytes());
    h[t.name] = {{"dtype", dt}, {"shape", t.shape}, {"data_offsets", {off, off + sizes.back()}}};
    off += sizes.back();
  }
  std::string header = h.dump();
  // The data section starts 8-byte aligned, or page aligned when any tensor asks for alignment
  // (so offsets within it are file offsets modulo the page).
  const size_t unit = aligned ? kPageAlign : 8;
  header.append((unit - (header.size() + 8) % unit) % unit, ' ');
  RME_ASSIGN_OR_RETURN(auto w, AtomicFileWriter::create(path));
  uint64_t n = header.size();
  RME_RETURN_IF_ERROR(w->write(&n, 8));
  RME_RETURN_IF_ERROR(w->write(header));
  const std::vector<uint8_t> zeros(kPageAlign, 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    for (uint64_t left = pads[i]; left > 0;) {
      const uint64_t n_pad = std::min<uint64_t>(left, zeros.size());
      RME_RETURN_IF_ERROR(w->write(zeros.data(), n_pad));
      left -= n_pad;
    }
    std::vector<std::shared_ptr<Buffer>> keep;  // a produced tensor's bytes, until written
    const void* data = tensors[i].data;
    if (tensors[i].produce) {
      RME_ASSIGN_OR_RETURN(data, tensors[i].produce(keep));
    }
    RME_RETURN_IF_ERROR(w->write(data, sizes[i]));
  }
  return w->commit();
}

}  // namespace rme
