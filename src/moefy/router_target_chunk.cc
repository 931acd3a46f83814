// moefy: the router target chunk file.
#include "moefy/router_target_chunk.h"

#include <cstring>

#include "core/json.h"

namespace rme::target_chunk {

namespace {

using json = nlohmann::json;

// magic, u64 header length, JSON header, then the arrays, each at a multiple of kAlign.
constexpr char kMagic[9] = "RMERTG01";
constexpr uint64_t kAlign = 64;

uint64_t align_up(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

}  // namespace

Layout layout(int64_t W, int T, int E, int L, int D) {
  Layout l{W, T, E, L, D, 0, 0, 0, 0, 0};
  const uint64_t n = static_cast<uint64_t>(W) * T;
  l.score = align_up(n * 4);
  l.labels = align_up(l.score + n * E * 4);
  l.gate = align_up(l.labels + n * L);
  l.end = l.gate + n * L * D * 2;
  return l;
}

std::string pool_name(int64_t i) {
  char b[32];
  std::snprintf(b, sizeof(b), "pool-%05lld.rtg", static_cast<long long>(i));
  return b;
}

Status write(const std::string& path, const Layout& l, const json& extra,
             const std::vector<int32_t>& ids, const std::vector<float>& score,
             const std::vector<uint8_t>& labels, const std::vector<uint16_t>& gate) {
  json h = extra;
  h["windows"] = l.windows;
  h["seq_len"] = l.seq_len;
  h["n_expert"] = l.n_expert;
  h["n_layer"] = l.n_layer;
  h["gate_dim"] = l.gate_dim;
  const std::string text = h.dump();
  RME_ASSIGN_OR_RETURN(auto out, AtomicFileWriter::create(path));
  const uint64_t n = text.size();
  RME_RETURN_IF_ERROR(out->write(kMagic, 8));
  RME_RETURN_IF_ERROR(out->write(&n, 8));
  RME_RETURN_IF_ERROR(out->write(text));
  RME_RETURN_IF_ERROR(out->pad_to(kAlign));
  const uint64_t base = out->offset();
  auto put = [&](uint64_t at, const void* p, size_t bytes) -> Status {
    RME_RETURN_IF_ERROR(out->pad_to(kAlign));
    if (out->offset() != base + at) return internal_error(path + ": chunk layout");
    return out->write(p, bytes);
  };
  RME_RETURN_IF_ERROR(put(l.ids, ids.data(), ids.size() * 4));
  RME_RETURN_IF_ERROR(put(l.score, score.data(), score.size() * 4));
  RME_RETURN_IF_ERROR(put(l.labels, labels.data(), labels.size()));
  if (l.gate_dim > 0) RME_RETURN_IF_ERROR(put(l.gate, gate.data(), gate.size() * 2));
  return out->commit();
}

Result<std::pair<std::shared_ptr<MappedFile>, uint64_t>> open(const std::string& path,
                                                              const Layout& want) {
  RME_ASSIGN_OR_RETURN(auto f, MappedFile::open(path));
  uint64_t n = 0;
  if (f->size() < 16 || std::memcmp(f->data(), kMagic, 8) != 0)
    return corrupt(path + ": not a router target chunk");
  std::memcpy(&n, f->data() + 8, 8);
  if (n > f->size() - 16) return corrupt(path + ": header runs past the end");
  RME_ASSIGN_OR_RETURN(
      json h, parse_json(std::string(reinterpret_cast<const char*>(f->data()) + 16, n), path));
  const uint64_t base = align_up(16 + n);
  try {
    if (h.at("windows").get<int64_t>() != want.windows ||
        h.at("seq_len").get<int>() != want.seq_len ||
        h.at("n_expert").get<int>() != want.n_expert ||
        h.at("n_layer").get<int>() != want.n_layer || h.at("gate_dim").get<int>() != want.gate_dim)
      return corrupt(path + ": chunk shape disagrees with the manifest");
  } catch (const std::exception& e) {
    return corrupt(path + ": " + e.what());
  }
  if (f->size() < base + want.end)
    return corrupt(path + ": " + std::to_string(f->size()) + " bytes, " +
                   std::to_string(base + want.end) + " expected");
  return std::make_pair(std::move(f), base);
}

}  // namespace rme::target_chunk
