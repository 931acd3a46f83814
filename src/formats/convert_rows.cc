// formats: row conversion helpers.
#include "formats/convert_rows.h"

#include <cstring>

#include "core/thread_pool.h"
#include "tensor/quant.h"

namespace rme {

std::vector<int64_t> rope_row_order(int64_t n_head, int64_t head_dim, RopeStyle from,
                                    RopeStyle to) {
  std::vector<int64_t> order(static_cast<size_t>(n_head * head_dim));
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_head; ++h) {
    const int64_t b = h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      if (from == to) {
        order[b + i] = b + i;
        order[b + half + i] = b + half + i;
      } else if (to == RopeStyle::kHalf) {  // interleaved -> half
        order[b + i] = b + 2 * i;
        order[b + half + i] = b + 2 * i + 1;
      } else {  // half -> interleaved
        order[b + 2 * i] = b + i;
        order[b + 2 * i + 1] = b + half + i;
      }
    }
  }
  return order;
}

std::shared_ptr<Buffer> convert_matrix(const MatView& src, DType to,
                                       const std::vector<int64_t>& order) {
  const size_t in_row = dtype_row_bytes(src.dtype, src.n_in);
  const size_t out_row = dtype_row_bytes(to, src.n_in);
  auto buf = std::make_shared<Buffer>(out_row * static_cast<size_t>(src.n_out));
  // Rows on every core: K-quant rows take ~10x longer to quantize than they take to read.
  ThreadPool::global().parallel_for(src.n_out, 16, [&](int64_t r0, int64_t r1, int) {
    std::vector<float> tmp(static_cast<size_t>(src.n_in));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t from = order.empty() ? r : order[r];
      const uint8_t* s = static_cast<const uint8_t*>(src.data) + from * in_row;
      uint8_t* d = buf->data() + r * out_row;
      if (src.dtype == to) {
        std::memcpy(d, s, in_row);
      } else {
        dequantize_row(src.dtype, s, tmp.data(), src.n_in);
        quantize_row(to, tmp.data(), d, src.n_in);
      }
    }
  });
  return buf;
}

const void* weight_for_writing(const WeightId& id, const MatView& v, DType to, const LlamaConfig& c,
                               RopeStyle target, std::vector<std::shared_ptr<Buffer>>& keep) {
  using K = WeightId::Kind;
  std::vector<int64_t> order;
  if (c.rope_style != target && (id.kind == K::kWq || id.kind == K::kBq))
    order = rope_row_order(c.n_head, c.head_dim, c.rope_style, target);
  if (c.rope_style != target && (id.kind == K::kWk || id.kind == K::kBk))
    order = rope_row_order(c.n_head_kv, c.head_dim, c.rope_style, target);
  if (id.kind == K::kBq || id.kind == K::kBk) {  // a bias moves with its matrix's rows
    if (to == v.dtype && order.empty()) return v.data;
    // As a column: one element per row, so rows reorder and convert like the matrix's.
    keep.push_back(convert_matrix(MatView{v.dtype, v.n_in, 1, v.data}, to, order));
    return keep.back()->data();
  }
  if (to == v.dtype && order.empty()) return v.data;
  keep.push_back(convert_matrix(v, to, order));
  return keep.back()->data();
}

TensorProducer weight_producer(const Model& model, const WeightId& id, const MatView& v, DType to,
                               const LlamaConfig& c, RopeStyle target, NameScheme scheme) {
  const LlamaConfig* cfg = &c;
  return [&model, id, v, to, cfg, target,
          scheme](std::vector<std::shared_ptr<Buffer>>& keep) -> Result<const void*> {
    MatView src = v;
    if (src.data == nullptr) {
      if (!model.deferred)
        return internal_error(tensor_name(id, scheme) + ": a weight with no data");
      RME_ASSIGN_OR_RETURN(std::shared_ptr<Buffer> made, model.deferred(id));
      keep.push_back(made);
      src.data = made->data();
    }
    return weight_for_writing(id, src, to, *cfg, target, keep);
  };
}

}  // namespace rme
