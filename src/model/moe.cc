// model: MoeConfig validation and the oracle expert score.
#include "model/moe.h"

#include <cmath>

namespace rme {

Status MoeConfig::validate(int n_layer) const {
  auto bad = [](const std::string& m) { return invalid_argument("moe config: " + m); };
  if (n_expert < 0 || n_expert > 1024) return bad("n_expert outside 0..1024");
  if (n_expert > 0 && (parent_n_ff < 1 || parent_n_ff > (1 << 20)))
    return bad("parent_n_ff " + std::to_string(parent_n_ff) + " outside 1..1048576");
  if (n_expert > 0 && (top_k < 1 || top_k > n_expert))
    return bad("top_k " + std::to_string(top_k) + " outside 1.." + std::to_string(n_expert));
  if (static_cast<int>(expert_channels.size()) != n_expert)
    return bad("expert channel lists for " + std::to_string(expert_channels.size()) +
               " experts, n_expert is " + std::to_string(n_expert));
  if (!expert_names.empty() && static_cast<int>(expert_names.size()) != n_expert)
    return bad("expert_names has " + std::to_string(expert_names.size()) + " entries");
  auto check_list = [&](const std::vector<int>& c, const std::string& what) -> Status {
    for (size_t i = 0; i < c.size(); ++i) {
      if (c[i] < 0 || c[i] >= parent_n_ff)
        return bad(what + ": channel " + std::to_string(c[i]) + " outside [0, " +
                   std::to_string(parent_n_ff) + ")");
      if (i > 0 && c[i] <= c[i - 1]) return bad(what + ": channels not strictly ascending");
    }
    return Status::Ok();
  };
  if (!shared_channels.empty() && static_cast<int>(shared_channels.size()) != n_layer)
    return bad("shared channels for " + std::to_string(shared_channels.size()) + " layers");
  for (size_t l = 0; l < shared_channels.size(); ++l)
    RME_RETURN_IF_ERROR(check_list(shared_channels[l], "shared layer " + std::to_string(l)));
  for (int e = 0; e < n_expert; ++e) {
    if (static_cast<int>(expert_channels[e].size()) != n_layer)
      return bad("expert " + std::to_string(e) + " has channels for " +
                 std::to_string(expert_channels[e].size()) + " layers, model has " +
                 std::to_string(n_layer));
    for (int l = 0; l < n_layer; ++l)
      RME_RETURN_IF_ERROR(check_list(
          expert_channels[e][l], "expert " + std::to_string(e) + " layer " + std::to_string(l)));
  }
  return Status::Ok();
}

void add_expert_mass(const MoeConfig& moe, int layer, const float* act, int n_tok, int64_t F,
                     float* scores) {
  for (int t = 0; t < n_tok; ++t) {
    const float* a = act + t * F;
    double total = 0;
    for (int64_t c = 0; c < F; ++c) total += std::fabs(a[c]);
    if (total <= 0) continue;
    for (int e = 0; e < moe.n_expert; ++e) {
      double m = 0;
      for (int c : moe.expert_channels[e][layer]) m += std::fabs(a[c]);
      scores[t * moe.n_expert + e] += static_cast<float>(m / total);
    }
  }
}

}  // namespace rme
