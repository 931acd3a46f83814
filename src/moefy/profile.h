// moefy: activation profiling — mean |down_proj input| per domain, layer and FFN channel, plus
// per-sequence profiles for clustering unlabeled text into pseudo-domains.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/forward.h"
#include "moefy/carve.h"

namespace rme {

// Plain data; what `rme profile` writes and `rme moefy` reads (a safetensors file).
struct ProfileStats {
  int n_layer = 0, n_ff = 0;
  std::vector<std::string> domains;
  std::vector<int64_t> tokens;                  // [d]
  std::vector<std::vector<float>> mean_abs;     // [d][l*F]
  std::vector<std::vector<float>> seq_profile;  // [n][l*F] mean |act| of one sequence
  std::vector<int> seq_domain;                  // [n]

  // [d][l][F], the shape carve_experts takes.
  ChannelScores scores() const;
  // Token-weighted mean over all domains: [l][F].
  std::vector<std::vector<float>> pooled() const;
  // Pseudo-domains: mean of the sequence profiles in each cluster.
  ChannelScores cluster_scores(const std::vector<int>& assign, int k) const;
};

Status write_profile(const ProfileStats& stats, const std::string& path);
Result<ProfileStats> read_profile(const std::string& path);

// Runs a dense model over sequences and accumulates ProfileStats. Borrows model and pool; not
// thread-safe (the forward pass itself uses the pool).
class Profiler {
 public:
  Profiler(const Model& model, ThreadPool& pool, int max_seq_len, int max_seq_profiles,
           const KernelConfig& kernels = KernelConfig::best());
  // Adds one sequence (at most max_seq_len tokens) of domain `domain` (created on first use).
  Status add(const std::string& domain, std::span<const int> tokens);
  ProfileStats finish();

 private:
  const Model& model_;
  Forward forward_;
  KvCache kv_;  // one sequence at a time, reused
  int max_seq_len_, max_seq_profiles_;
  ProfileStats stats_;
  std::vector<std::vector<double>> sum_;  // [d][l*F]
  std::vector<double> seq_sum_;           // current sequence [l*F]
};

}  // namespace rme
