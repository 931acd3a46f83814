// moefy: profiling and the stats file.
#include "moefy/profile.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/json.h"
#include "formats/safetensors.h"
#include "tensor/half.h"

namespace rme {

ChannelScores ProfileStats::scores() const {
  ChannelScores out(domains.size(), std::vector<std::vector<float>>(n_layer));
  for (size_t d = 0; d < domains.size(); ++d)
    for (int l = 0; l < n_layer; ++l)
      out[d][l].assign(mean_abs[d].begin() + l * n_ff, mean_abs[d].begin() + (l + 1) * n_ff);
  return out;
}

std::vector<std::vector<float>> ProfileStats::pooled() const {
  std::vector<std::vector<float>> out(n_layer, std::vector<float>(n_ff, 0));
  double total = 0;
  for (int64_t t : tokens) total += static_cast<double>(t);
  for (size_t d = 0; d < domains.size(); ++d)
    for (int l = 0; l < n_layer; ++l)
      for (int c = 0; c < n_ff; ++c)
        out[l][c] += static_cast<float>(mean_abs[d][l * n_ff + c] * (tokens[d] / total));
  return out;
}

ChannelScores ProfileStats::cluster_scores(const std::vector<int>& assign, int k) const {
  ChannelScores out(k, std::vector<std::vector<float>>(n_layer, std::vector<float>(n_ff, 0)));
  std::vector<int> count(k, 0);
  for (size_t i = 0; i < assign.size(); ++i) {
    ++count[assign[i]];
    for (int l = 0; l < n_layer; ++l)
      for (int c = 0; c < n_ff; ++c) out[assign[i]][l][c] += seq_profile[i][l * n_ff + c];
  }
  for (int g = 0; g < k; ++g)
    for (auto& l : out[g])
      for (float& v : l) v /= std::max(1, count[g]);
  return out;
}

Status write_profile(const ProfileStats& s, const std::string& path) {
  using json = nlohmann::json;
  std::vector<SafetensorsEntry> entries;
  const int64_t LF = int64_t{s.n_layer} * s.n_ff;
  for (size_t d = 0; d < s.domains.size(); ++d)
    entries.push_back({"domain." + std::to_string(d) + ".mean_abs",
                       DType::kF32,
                       {s.n_layer, s.n_ff},
                       s.mean_abs[d].data()});
  std::vector<uint16_t> seq(s.seq_profile.size() * LF);
  for (size_t i = 0; i < s.seq_profile.size(); ++i)
    for (int64_t j = 0; j < LF; ++j) seq[i * LF + j] = f32_to_f16(s.seq_profile[i][j]);
  if (!seq.empty())
    entries.push_back({"sequences.profile",
                       DType::kF16,
                       {static_cast<int64_t>(s.seq_profile.size()), LF},
                       seq.data()});
  json meta = {{"domains", s.domains},
               {"tokens", s.tokens},
               {"seq_domain", s.seq_domain},
               {"n_layer", s.n_layer},
               {"n_ff", s.n_ff}};
  return write_safetensors(path, entries, {{"rme_profile", meta.dump()}});
}

Result<ProfileStats> read_profile(const std::string& path) {
  using json = nlohmann::json;
  RME_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(path));
  auto it = f->metadata().find("rme_profile");
  if (it == f->metadata().end())
    return corrupt(path + ": not an `rme profile` file (metadata 'rme_profile' is missing)");
  ProfileStats s;
  try {
    RME_ASSIGN_OR_RETURN(json m, parse_json(it->second, path + ": rme_profile"));
    s.domains = m.at("domains").get<std::vector<std::string>>();
    s.tokens = m.at("tokens").get<std::vector<int64_t>>();
    s.seq_domain = m.at("seq_domain").get<std::vector<int>>();
    s.n_layer = m.at("n_layer").get<int>();
    s.n_ff = m.at("n_ff").get<int>();
  } catch (const std::exception& e) {
    return corrupt(path + ": rme_profile metadata: " + e.what());
  }
  const int64_t LF = int64_t{s.n_layer} * s.n_ff;
  if (s.tokens.size() != s.domains.size()) return corrupt(path + ": tokens per domain mismatch");
  for (size_t d = 0; d < s.domains.size(); ++d) {
    const Tensor* t = f->find("domain." + std::to_string(d) + ".mean_abs");
    if (t == nullptr || t->dtype != DType::kF32 ||
        t->shape != std::vector<int64_t>{s.n_layer, s.n_ff})
      return corrupt(path + ": domain " + std::to_string(d) + " statistics missing or misshapen");
    const float* p = static_cast<const float*>(t->data);
    s.mean_abs.emplace_back(p, p + LF);
  }
  if (const Tensor* t = f->find("sequences.profile")) {
    if (t->dtype != DType::kF16 || t->shape.size() != 2 || t->shape[1] != LF ||
        t->shape[0] != static_cast<int64_t>(s.seq_domain.size()))
      return corrupt(path + ": sequences.profile is misshapen");
    const uint16_t* p = static_cast<const uint16_t*>(t->data);
    for (int64_t i = 0; i < t->shape[0]; ++i) {
      std::vector<float> row(LF);
      for (int64_t j = 0; j < LF; ++j) row[j] = f16_to_f32(p[i * LF + j]);
      s.seq_profile.push_back(std::move(row));
    }
  }
  return s;
}

Profiler::Profiler(const Model& model, ThreadPool& pool, int max_seq_len, int max_seq_profiles,
                   const KernelConfig& kernels)
    : model_(model),
      forward_(model, 64, pool, kernels),
      kv_(model, max_seq_len),
      max_seq_len_(max_seq_len),
      max_seq_profiles_(max_seq_profiles) {
  stats_.n_layer = model.config.n_layer;
  stats_.n_ff = model.config.n_ff;
  seq_sum_.assign(static_cast<size_t>(stats_.n_layer) * stats_.n_ff, 0);
  forward_.set_ffn_probe([this](int layer, int n_tok, const float* act, int64_t width) {
    double* dst = &seq_sum_[static_cast<size_t>(layer) * stats_.n_ff];
    for (int t = 0; t < n_tok; ++t)
      for (int64_t c = 0; c < width; ++c) dst[c] += std::fabs(act[t * width + c]);
  });
}

Status Profiler::add(const std::string& domain, std::span<const int> tokens) {
  if (model_.moe.is_moe() || !model_.config.n_ff_layer.empty())
    return invalid_argument(model_.source + ": profile a dense model (uniform FFN width)");
  if (tokens.empty()) return Status::Ok();
  if (static_cast<int>(tokens.size()) > max_seq_len_) tokens = tokens.first(max_seq_len_);
  size_t d =
      std::find(stats_.domains.begin(), stats_.domains.end(), domain) - stats_.domains.begin();
  if (d == stats_.domains.size()) {
    stats_.domains.push_back(domain);
    stats_.tokens.push_back(0);
    sum_.emplace_back(seq_sum_.size(), 0.0);
  }
  std::fill(seq_sum_.begin(), seq_sum_.end(), 0.0);
  RME_RETURN_IF_ERROR(forward_.run(tokens, 0, kv_, nullptr, false));
  for (size_t i = 0; i < seq_sum_.size(); ++i) sum_[d][i] += seq_sum_[i];
  stats_.tokens[d] += static_cast<int64_t>(tokens.size());
  if (static_cast<int>(stats_.seq_profile.size()) < max_seq_profiles_) {
    std::vector<float> p(seq_sum_.size());
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<float>(seq_sum_[i] / tokens.size());
    stats_.seq_profile.push_back(std::move(p));
    stats_.seq_domain.push_back(static_cast<int>(d));
  }
  return Status::Ok();
}

ProfileStats Profiler::finish() {
  stats_.mean_abs.clear();
  for (size_t d = 0; d < sum_.size(); ++d) {
    std::vector<float> m(sum_[d].size());
    for (size_t i = 0; i < m.size(); ++i)
      m[i] = static_cast<float>(sum_[d][i] / std::max<int64_t>(1, stats_.tokens[d]));
    stats_.mean_abs.push_back(std::move(m));
  }
  return stats_;
}

}  // namespace rme
