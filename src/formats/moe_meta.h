// formats: the Read-ME layout of an MoE checkpoint as JSON (config.json's "rme_moe", or the GGUF
// string "rme.moe"), binding an MoE's experts and router, and each expert's byte range.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "formats/bind.h"
#include "model/weights.h"

namespace rme {

// The layout (MoeConfig) and the router's architecture, as a JSON object's text. The dense
// parent's path is stored relative to the folder that holds out_path (the file being written), so
// a checkpoint and its parent can move together and be used from any working directory.
std::string moe_layout_json(const Model& model, const std::string& out_path);
// Sets model.moe, config.n_ff_layer (shared widths) and, when the layout names one, an empty
// router Model with its config. A relative parent path is resolved against the folder holding
// `path` (older checkpoints stored it relative to the working directory: kept if only that
// exists). Errors name `path`.
Status apply_moe_layout(const std::string& json_text, const std::string& path, Model& model);
// Binds experts, layer gates and router weights (after bind_weights of the backbone).
Status bind_moe(Model& model, const TensorLookup& lookup, NameScheme scheme,
                const std::string& path);

// Where expert e's slices for every layer lie in the (single) checkpoint file: one range, with
// bytes == the sum of its tensors' sizes when contiguous.
struct ExpertRange {
  uint64_t offset = 0, bytes = 0, tensor_bytes = 0;
  const MappedFile* file = nullptr;  // the mapped checkpoint file holding the range
};
// Fails if the experts do not all lie in one mapped file of the model.
Result<std::vector<ExpertRange>> expert_ranges(const Model& model);

}  // namespace rme
