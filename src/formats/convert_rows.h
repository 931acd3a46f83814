// formats: converting a weight matrix to another dtype and reordering Q/K rows between the two
// RoPE layouts (used by the writers).
#pragma once

#include <memory>
#include <vector>

#include "formats/tensor_names.h"
#include "kernels/matmul.h"
#include "model/config.h"
#include "model/weights.h"
#include "tensor/tensor.h"

namespace rme {

// Source row for each destination row when moving Q or K weights of n_head heads from one RoPE
// pairing to the other (interleaved <-> half). Identity when from == to.
std::vector<int64_t> rope_row_order(int64_t n_head, int64_t head_dim, RopeStyle from, RopeStyle to);

// Copies `src` into a new buffer as dtype `to`, taking rows in `order` (empty = identity).
std::shared_ptr<Buffer> convert_matrix(const MatView& src, DType to,
                                       const std::vector<int64_t>& order = {});

// What a writer stores for weight `id`: `v` converted to dtype `to`, with Q/K rows moved from
// config.rope_style to the `target` layout. Returns v.data when nothing changes; otherwise the
// converted copy, kept alive in `keep`.
const void* weight_for_writing(const WeightId& id, const MatView& v, DType to,
                               const LlamaConfig& config, RopeStyle target,
                               std::vector<std::shared_ptr<Buffer>>& keep);

// weight_for_writing as a TensorProducer, run when a writer reaches the tensor: a view without
// data (a deferred weight: Model::deferred) is made first. One converted tensor at a time.
TensorProducer weight_producer(const Model& model, const WeightId& id, const MatView& v, DType to,
                               const LlamaConfig& c, RopeStyle target, NameScheme scheme);

}  // namespace rme
