// formats: scanning a loaded model's weights for NaN and Inf, named as its file names them.
#pragma once

#include "core/status.h"
#include "model/weights.h"

namespace rme {

enum class WeightCheck {
  kNone,
  // Every 1-D weight (norms, biases) and the first and last row of every matrix: catches a
  // whole tensor of NaN and damaged norms at a negligible cost; findings are logged warnings.
  kQuick,
  // Every stored value (and every quantized block's scale and min): the first finding is an
  // error naming the tensor, row and column. Reads the whole model once.
  kFull,
};

// Checks m's weights, its router's included. kQuick returns Ok after warning; kFull returns
// kCorrupt on the first NaN/Inf.
Status check_weights(const Model& m, WeightCheck how);

}  // namespace rme
