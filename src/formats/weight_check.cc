// formats: the NaN/Inf scan over every weight view of a model.
#include "formats/weight_check.h"

#include "core/log.h"
#include "formats/tensor_names.h"
#include "tensor/finite.h"

namespace rme {

Status check_weights(const Model& m, WeightCheck how) {
  if (how == WeightCheck::kNone) return Status::Ok();
  const NameScheme scheme = m.format == "safetensors" ? NameScheme::kHf : NameScheme::kGguf;
  Status found = Status::Ok();
  int warned = 0;
  m.for_each_weight([&](const WeightId& id, const MatView& w) {
    if (!found.ok() || w.data == nullptr) return;
    const size_t row_bytes = dtype_row_bytes(w.dtype, w.n_in);
    auto scan_row = [&](int64_t r) {
      if (!found.ok()) return;
      const auto* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * row_bytes;
      const int64_t col = first_nonfinite(w.dtype, row, w.n_in);
      if (col < 0) return;
      const std::string what = m.source + ": tensor '" + tensor_name(id, scheme) + "' (" +
                               std::string(dtype_name(w.dtype)) + ") row " + std::to_string(r) +
                               " column " + std::to_string(col) + " is NaN or infinite";
      if (how == WeightCheck::kFull) {
        found = corrupt(what);
      } else if (warned++ < 8) {
        log_warn(what + " (rme info --check scans every weight)");
      }
    };
    if (how == WeightCheck::kFull || w.n_out <= 2) {
      for (int64_t r = 0; r < w.n_out; ++r) scan_row(r);
    } else {
      scan_row(0);
      scan_row(w.n_out - 1);
    }
  });
  return found;
}

}  // namespace rme
