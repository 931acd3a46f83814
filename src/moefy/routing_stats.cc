// moefy: routing statistics.
#include "moefy/routing_stats.h"

#include <algorithm>
#include <cmath>

namespace rme {

void RoutingStats::add(const std::string& domain, const std::vector<std::vector<int>>& c) {
  size_t d = std::find(domains_.begin(), domains_.end(), domain) - domains_.begin();
  if (d == domains_.size()) {
    domains_.push_back(domain);
    load_.emplace_back(n_expert_, 0);
    same_.push_back(0);
    pairs_.push_back(0);
  }
  if (trans_.empty() && n_rows_ > 1)
    trans_.assign(n_rows_ - 1,
                  std::vector<std::vector<int64_t>>(n_expert_, std::vector<int64_t>(n_expert_, 0)));
  for (size_t r = 0; r < c.size(); ++r) {
    for (size_t t = 0; t < c[r].size(); ++t) {
      ++load_[d][c[r][t]];
      if (t > 0) {
        same_[d] += c[r][t] == c[r][t - 1];
        ++pairs_[d];
      }
      if (r + 1 < c.size()) ++trans_[r][c[r][t]][c[r + 1][t]];
    }
  }
}

double RoutingStats::locality(size_t d) const {
  return pairs_[d] > 0 ? double(same_[d]) / pairs_[d] : 0;
}

double RoutingStats::locality_all() const {
  int64_t s = 0, p = 0;
  for (size_t d = 0; d < same_.size(); ++d) s += same_[d], p += pairs_[d];
  return p > 0 ? double(s) / p : 0;
}

double RoutingStats::mutual_information(int l) const {
  const auto& m = trans_[l];
  double n = 0;
  std::vector<double> row(n_expert_, 0), col(n_expert_, 0);
  for (int a = 0; a < n_expert_; ++a)
    for (int b = 0; b < n_expert_; ++b) {
      n += m[a][b];
      row[a] += m[a][b];
      col[b] += m[a][b];
    }
  if (n == 0) return 0;
  double mi = 0;
  for (int a = 0; a < n_expert_; ++a)
    for (int b = 0; b < n_expert_; ++b)
      if (m[a][b] > 0) mi += m[a][b] / n * std::log2(m[a][b] * n / (row[a] * col[b]));
  return mi;
}

std::vector<std::vector<double>> RoutingStats::load_shares() const {
  std::vector<std::vector<double>> shares;
  for (const auto& l : load_) {
    int64_t total = 0;
    for (int64_t x : l) total += x;
    auto& row = shares.emplace_back(n_expert_, 0.0);
    for (int e = 0; e < n_expert_; ++e) row[e] = total ? double(l[e]) / total : 0;
  }
  return shares;
}

std::vector<std::vector<double>> RoutingStats::transition_probabilities() const {
  if (trans_.empty()) return {};
  std::vector<std::vector<double>> p(n_expert_, std::vector<double>(n_expert_, 0.0));
  for (const auto& layer : trans_)
    for (int a = 0; a < n_expert_; ++a)
      for (int b = 0; b < n_expert_; ++b) p[a][b] += static_cast<double>(layer[a][b]);
  for (auto& row : p) {
    double total = 0;
    for (double x : row) total += x;
    if (total > 0)
      for (double& x : row) x /= total;
  }
  return p;
}

}  // namespace rme
