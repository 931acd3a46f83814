// moefy: carving experts out of a dense FFN from per-domain activation statistics (Read-ME's
// expert construction), structured pruning, and k-means pseudo-domains.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/weights.h"

namespace rme {

// Channel score per group (domain or cluster), layer and channel: [g][l][F].
using ChannelScores = std::vector<std::vector<std::vector<float>>>;

struct ExpertLayout {
  std::vector<std::vector<int>> shared;                // [l] channels kept by every group
  std::vector<std::vector<std::vector<int>>> experts;  // [g][l] the group's other kept channels
};

// Per layer, each group keeps its top round(keep*F) channels by score (ties: lower index); the
// channels every group keeps are the shared expert; group g's remaining ones are expert g. All
// lists ascending. Fails on an empty or ragged input or keep outside (0, 1].
Result<ExpertLayout> carve_experts(const ChannelScores& scores, double keep);

// Per layer, the widths[l] channels with the highest score (ascending order): a structurally
// pruned FFN.
std::vector<std::vector<int>> top_channels(const std::vector<std::vector<float>>& score,
                                           const std::vector<int>& widths);

// k-means (k-means++ seeding, cosine geometry: rows are L2-normalized) over rows [n][dim].
// Returns each row's cluster; deterministic for a seed. Fails when n < k.
Result<std::vector<int>> kmeans(const std::vector<std::vector<float>>& rows, int k, uint64_t seed,
                                int iterations = 50);

// A new Model whose backbone views share the dense model's storage and whose FFNs are f32 copies
// of the layout's channels: shared expert as the layer FFN, routed experts as experts. With no
// experts (layout.experts empty) the result is the structurally pruned dense model. With
// `deferred`, the FFN slices are not copied: their views carry shapes only and Model::deferred
// cuts each from the parent when a writer asks (the same f32 values), so writing the MoE holds
// one slice at a time instead of all of them; `dense` must then outlive the result, which can
// only be written (rme moefy to .gguf).
Result<Model> build_moe(const Model& dense, const ExpertLayout& layout,
                        const std::vector<std::string>& names, bool deferred = false);

}  // namespace rme
