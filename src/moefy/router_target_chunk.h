// moefy: the router target chunk file — its layout, writer and checked opener (internal to
// router_targets*.cc; the format is in docs/formats.md).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/file.h"
#include "core/status.h"

namespace rme::target_chunk {

inline constexpr int64_t kChunkTokens = 8192;  // a chunk per minute or so for a 1B parent, 2 cores

// Offsets of the arrays of a chunk of W windows of T tokens, from the start of the arrays.
struct Layout {
  int64_t windows;
  int seq_len, n_expert, n_layer, gate_dim;
  uint64_t ids, score, labels, gate, end;
};
Layout layout(int64_t W, int T, int E, int L, int D);

std::string pool_name(int64_t chunk);  // "pool-00012.rtg"

// Writes a chunk atomically: `extra` joins the header.
Status write(const std::string& path, const Layout& l, const nlohmann::json& extra,
             const std::vector<int32_t>& ids, const std::vector<float>& score,
             const std::vector<uint8_t>& labels, const std::vector<uint16_t>& gate);

// Maps a chunk and checks its header and size against `want`; returns the mapping and the
// offset of its arrays.
Result<std::pair<std::shared_ptr<MappedFile>, uint64_t>> open(const std::string& path,
                                                              const Layout& want);

}  // namespace rme::target_chunk
