// model: bf16_weights — each F16/F32 matrix rounded to BF16 rows, its source pages released.
#include "model/bf16_weights.h"

#include <new>
#include <vector>

#include "tensor/half.h"

namespace rme {

Result<Bf16Report> bf16_weights(Model& m, bool skip_routed_experts, ThreadPool& pool) {
  Bf16Report report;
  std::vector<MatView*> to_convert;
  auto want = [&](MatView& v) {
    if (v.data != nullptr && v.layout == WeightLayout::kRows &&
        (v.dtype == DType::kF16 || v.dtype == DType::kF32))
      to_convert.push_back(&v);
  };
  for (LayerWeights& L : m.weights.layers) {
    for (MatView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) want(*v);
    if (!skip_routed_experts)
      for (ExpertWeights& e : L.experts)
        for (MatView* v : {&e.gate, &e.up, &e.down}) want(*v);
  }
  want(m.weights.output);
  try {
    for (MatView* v : to_convert) {
      const size_t from = dtype_row_bytes(v->dtype, v->n_in) * v->n_out;
      const size_t bytes = dtype_row_bytes(DType::kBF16, v->n_in) * v->n_out;
      auto buf = std::make_shared<Buffer>(bytes);
      auto* dst = reinterpret_cast<uint16_t*>(buf->data());
      const int64_t n = v->n_out * v->n_in;
      const bool f16 = v->dtype == DType::kF16;
      const auto* src16 = static_cast<const uint16_t*>(v->data);
      const auto* src32 = static_cast<const float*>(v->data);
      pool.parallel_for(n, int64_t{1} << 16, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i)
          dst[i] = f32_to_bf16(f16 ? f16_to_f32(src16[i]) : src32[i]);
      });
      m.replace_storage(*v, std::move(buf),
                        MatView{DType::kBF16, v->n_out, v->n_in, dst, WeightLayout::kRows});
      ++report.matrices;
      report.bytes += bytes;
      report.bytes_from += from;
    }
  } catch (const std::bad_alloc&) {
    return resource_exhausted(m.source + ": out of memory converting weights to bf16 (" +
                              std::to_string(report.matrices) + " matrices done)");
  }
  return report;
}

}  // namespace rme
