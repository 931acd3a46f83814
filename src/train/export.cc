// train: torch parameters -> Model views -> write_hf_model.
#include "train/export.h"

#include <cstring>

#include "core/file.h"
#include "formats/model_io.h"

namespace rme {
namespace {

const float* own(Model& m, const torch::Tensor& t) {
  auto c = t.detach().to(torch::kFloat32).contiguous();
  auto buf = std::make_shared<Buffer>(std::max<size_t>(1, static_cast<size_t>(c.numel()) * 4));
  if (c.numel() > 0) std::memcpy(buf->data(), c.data_ptr<float>(), c.numel() * 4);
  m.buffers.push_back(buf);
  return reinterpret_cast<const float*>(buf->data());
}

}  // namespace

MatView own_matrix(Model& m, const torch::Tensor& t) {
  return MatView{DType::kF32, t.size(0), t.size(1), t.numel() > 0 ? own(m, t) : nullptr};
}

Model model_from_torch(LlamaTorchImpl& m) {
  Model model;
  model.config = m.config();
  model.config.rope_style = RopeStyle::kHalf;
  model.format = "torch";
  model.source = "training";
  ModelWeights& w = model.weights;
  w.tok_embd = own_matrix(model, m.tok_embd);
  for (const auto& L : m.layers) {
    LayerWeights lw;
    lw.attn_norm = own(model, L.attn_norm);
    lw.wq = own_matrix(model, L.wq);
    lw.wk = own_matrix(model, L.wk);
    lw.wv = own_matrix(model, L.wv);
    lw.wo = own_matrix(model, L.wo);
    if (L.bq.defined()) {
      lw.bq = own(model, L.bq);
      lw.bk = own(model, L.bk);
      lw.bv = own(model, L.bv);
    }
    lw.ffn_norm = own(model, L.ffn_norm);
    lw.w_gate = own_matrix(model, L.gate);
    lw.w_up = own_matrix(model, L.up);
    lw.w_down = own_matrix(model, L.down);
    w.layers.push_back(lw);
  }
  w.out_norm = own(model, m.out_norm);
  w.output = m.output.defined() ? own_matrix(model, m.output) : w.tok_embd;
  return model;
}

Status export_hf(LlamaTorchImpl& m, const std::string& dir, DType dtype,
                 const std::string& tokenizer_dir) {
  Model model = model_from_torch(m);
  RME_RETURN_IF_ERROR(write_hf_model(model, nullptr, dir, dtype));
  if (!tokenizer_dir.empty())
    RME_RETURN_IF_ERROR(copy_tokenizer_files(tokenizer_dir, dir).status());
  return Status::Ok();
}

}  // namespace rme
