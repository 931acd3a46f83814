// model: interleave_weights — each eligible matrix copied into the interleaved form, its source
// pages released.
#include "model/interleave_weights.h"

#include <new>
#include <vector>

#include "kernels/interleave.h"

namespace rme {

Result<InterleaveReport> interleave_weights(Model& m, const KernelConfig& cfg,
                                            bool skip_routed_experts, ThreadPool& pool) {
  InterleaveReport report;
  std::vector<MatView*> to_rewrite;
  auto want = [&](MatView& v) {
    if (v.data != nullptr && v.layout == WeightLayout::kRows && interleave_helps(cfg, v.dtype) &&
        v.n_out >= kInterleaveRows && (v.dtype != DType::kBF16 || v.n_in % 2 == 0))
      to_rewrite.push_back(&v);
  };
  for (LayerWeights& L : m.weights.layers) {
    for (MatView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) want(*v);
    if (!skip_routed_experts)
      for (ExpertWeights& e : L.experts)
        for (MatView* v : {&e.gate, &e.up, &e.down}) want(*v);
  }
  want(m.weights.output);
  try {
    for (MatView* v : to_rewrite) {
      const size_t row_bytes = dtype_row_bytes(v->dtype, v->n_in), bytes = row_bytes * v->n_out;
      auto buf = std::make_shared<Buffer>(bytes);
      const auto* src = static_cast<const uint8_t*>(v->data);
      uint8_t* dst = buf->data();
      // Whole groups split across the pool; the rows after them copied by the last piece.
      const int64_t n_group = v->n_out / kInterleaveRows;
      pool.parallel_for(n_group, 16, [&](int64_t g0, int64_t g1, int) {
        const int64_t r0 = g0 * kInterleaveRows;
        const int64_t r1 = g1 == n_group ? v->n_out : g1 * kInterleaveRows;
        interleave_rows16(v->dtype, src + r0 * row_bytes, r1 - r0, v->n_in, dst + r0 * row_bytes);
      });
      m.replace_storage(*v, std::move(buf),
                        MatView{v->dtype, v->n_out, v->n_in, dst, WeightLayout::kRows16});
      ++report.matrices;
      report.bytes += bytes;
    }
  } catch (const std::bad_alloc&) {
    return resource_exhausted(m.source + ": out of memory interleaving weights (" +
                              std::to_string(report.matrices) + " matrices done)");
  }
  return report;
}

}  // namespace rme
