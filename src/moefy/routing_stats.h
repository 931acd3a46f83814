// moefy: statistics of routing decisions — expert load per domain, temporal locality, and for
// layer-wise routing the layer-to-layer transition counts and mutual information.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rme {

// Accumulates sequences of expert choices. choices[l][t]: layer l's expert for token t (one row
// when routing is decided once for all layers). Plain data; not thread-safe.
class RoutingStats {
 public:
  RoutingStats(int n_expert, int n_rows) : n_expert_(n_expert), n_rows_(n_rows) {}

  void add(const std::string& domain, const std::vector<std::vector<int>>& choices);

  const std::vector<std::string>& domains() const { return domains_; }
  // [d][e]: token count (over rows) per domain and expert.
  const std::vector<std::vector<int64_t>>& load() const { return load_; }
  // Share of tokens (after the first of each sequence) whose expert equals the previous token's,
  // per domain, averaged over rows.
  double locality(size_t domain) const;
  double locality_all() const;
  // [l][e][e']: tokens choosing e at row l and e' at row l + 1 (all domains).
  const std::vector<std::vector<std::vector<int64_t>>>& transitions() const { return trans_; }
  // Mutual information (bits) between rows l and l + 1 from the transition counts.
  double mutual_information(int l) const;
  // [d][e]: share of domain d's choices that went to expert e (rows sum to 1; 0 for no tokens).
  std::vector<std::vector<double>> load_shares() const;
  // [e][e']: P(expert e' at row l + 1 | expert e at row l), every pair of adjacent rows pooled
  // (rows sum to 1, or 0 where e was never chosen); empty with one row.
  std::vector<std::vector<double>> transition_probabilities() const;

 private:
  int n_expert_, n_rows_;
  std::vector<std::string> domains_;
  std::vector<std::vector<int64_t>> load_;
  std::vector<int64_t> same_, pairs_;  // [d]
  std::vector<std::vector<std::vector<int64_t>>> trans_;
};

}  // namespace rme
