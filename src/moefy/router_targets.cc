// moefy: router targets — the mapped reader.
#include "moefy/router_targets.h"

#include <nlohmann/json.hpp>

#include "core/json.h"
#include "moefy/router_target_chunk.h"

namespace rme {

using json = nlohmann::json;

uint64_t gate_input_bytes(const RouterTargetSpec& s, int64_t valid_tokens, int n_layer,
                          int n_embd) {
  return static_cast<uint64_t>(s.pool_windows() * s.seq_len + valid_tokens) * n_layer * n_embd * 2;
}

Result<std::unique_ptr<RouterTargets>> RouterTargets::open(const std::string& dir) {
  const std::string man_path = dir + "/manifest.json";
  if (!file_exists(man_path)) return not_found(dir + ": no router targets (manifest.json)");
  RME_ASSIGN_OR_RETURN(std::string text, read_file(man_path));
  RME_ASSIGN_OR_RETURN(json m, parse_json(text, man_path));
  auto t = std::unique_ptr<RouterTargets>(new RouterTargets());
  std::vector<int64_t> counts;
  try {
    t->fingerprint_ = m.at("fingerprint").get<std::string>();
    t->seq_len_ = m.at("seq_len").get<int>();
    t->n_expert_ = m.at("n_expert").get<int>();
    t->n_layer_ = m.at("n_layer").get<int>();
    t->gate_dim_ = m.at("gate_dim").get<int>();
    t->n_pool_ = m.at("pool_windows").get<int64_t>();
    t->chunk_windows_ = m.at("chunk_windows").get<int64_t>();
    t->valid_names_ = m.at("valid_domains").get<std::vector<std::string>>();
    counts = m.at("valid_windows").get<std::vector<int64_t>>();
  } catch (const std::exception& e) {
    return corrupt(man_path + ": " + e.what());
  }
  if (t->seq_len_ < 1 || t->n_expert_ < 1 || t->n_layer_ < 1 || t->gate_dim_ < 0 ||
      t->n_pool_ < 1 || t->chunk_windows_ < 1 || counts.size() != t->valid_names_.size())
    return corrupt(man_path + ": misshapen manifest");
  auto load = [&](const std::string& path, int64_t windows, Chunk& c) -> Status {
    const auto l =
        target_chunk::layout(windows, t->seq_len_, t->n_expert_, t->n_layer_, t->gate_dim_);
    auto r = target_chunk::open(path, l);
    if (!r.ok())
      return Status(r.status().code(),
                    r.status().message() + " (an unfinished build: run it again to finish)");
    const uint64_t base = r->second;
    c.file = std::move(r->first);
    c.windows = windows;
    c.ids = base + l.ids;
    c.score = base + l.score;
    c.labels = base + l.labels;
    c.gate = t->gate_dim_ > 0 ? base + l.gate : 0;
    return Status::Ok();
  };
  for (int64_t b = 0, k = 0; b < t->n_pool_; b += t->chunk_windows_, ++k) {
    Chunk c;
    RME_RETURN_IF_ERROR(load(dir + "/" + target_chunk::pool_name(k),
                             std::min(t->chunk_windows_, t->n_pool_ - b), c));
    t->pool_chunks_.push_back(std::move(c));
  }
  int64_t first = 0;
  for (int64_t n : counts) {
    t->valid_.push_back({first, n});
    first += n;
  }
  if (first > 0) RME_RETURN_IF_ERROR(load(dir + "/valid.rtg", first, t->valid_chunk_));
  return t;
}

TargetRows RouterTargets::rows(const Chunk& c, int64_t w) const {
  RME_CHECK(w >= 0 && w < c.windows);
  const uint8_t* base = c.file->data();
  const size_t n = static_cast<size_t>(w) * seq_len_;
  TargetRows r;
  r.ids = reinterpret_cast<const int32_t*>(base + c.ids) + n;
  r.score = reinterpret_cast<const float*>(base + c.score) + n * n_expert_;
  r.labels = base + c.labels + n * n_layer_;
  if (gate_dim_ > 0)
    r.gate = reinterpret_cast<const uint16_t*>(base + c.gate) + n * n_layer_ * gate_dim_;
  return r;
}

TargetRows RouterTargets::pool(int64_t w) const {
  RME_CHECK(w >= 0 && w < n_pool_);
  return rows(pool_chunks_[w / chunk_windows_], w % chunk_windows_);
}

TargetRows RouterTargets::valid(size_t d, int64_t w) const {
  RME_CHECK(d < valid_.size() && w >= 0 && w < valid_[d].second);
  return rows(valid_chunk_, valid_[d].first + w);
}

}  // namespace rme
