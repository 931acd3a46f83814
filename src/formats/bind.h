// formats: builds a Model's typed weight views from a format's named tensors.
#pragma once

#include <functional>
#include <string>

#include "formats/tensor_names.h"
#include "model/weights.h"
#include "tensor/tensor.h"

namespace rme {

using TensorLookup = std::function<const Tensor*(const std::string& name)>;

// Fills model.weights (model.config must be set and valid). Matrices are mapped in place in any
// compute dtype; norms are copied to f32. A missing output weight means tied output.
// Errors name the file and tensor: "f.gguf: tensor 'blk.0.attn_q.weight' shape [64, 32] != [64,
// 64]".
Status bind_weights(Model& model, const TensorLookup& lookup, NameScheme scheme,
                    const std::string& path);

// After bind_weights on an MoE (model.moe set): binds each expert's slices, checked against the
// channel counts of the layout, and the layer-wise gates when the layout has them.
Status bind_moe_weights(Model& model, const TensorLookup& lookup, NameScheme scheme,
                        const std::string& path);

// Sets/overwrites one weight's view (used by binders and converters).
void set_weight(Model& model, const WeightId& id, const MatView& view);

}  // namespace rme
