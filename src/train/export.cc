// train: torch parameters -> Model views -> write_hf_model.
#include "train/export.h"

#include <cstring>

#include "core/file.h"
#include "formats/model_io.h"

namespace rme {

Status export_hf(LlamaTorchImpl& m, const std::string& dir, DType dtype,
                 const std::string& tokenizer_dir) {
  Model model;
  model.config = m.config();
  model.format = "torch";
  model.source = "training";
  auto own = [&](const torch::Tensor& t) {
    auto c = t.detach().to(torch::kFloat32).contiguous();
    auto buf = std::make_shared<Buffer>(static_cast<size_t>(c.numel()) * 4);
    std::memcpy(buf->data(), c.data_ptr<float>(), buf->size());
    model.buffers.push_back(buf);
    return reinterpret_cast<const float*>(buf->data());
  };
  auto mat = [&](const torch::Tensor& t) {
    return MatView{DType::kF32, t.size(0), t.size(1), own(t)};
  };
  ModelWeights& w = model.weights;
  w.tok_embd = mat(m.tok_embd);
  for (const auto& L : m.layers) {
    LayerWeights lw;
    lw.attn_norm = own(L.attn_norm);
    lw.wq = mat(L.wq);
    lw.wk = mat(L.wk);
    lw.wv = mat(L.wv);
    lw.wo = mat(L.wo);
    lw.ffn_norm = own(L.ffn_norm);
    lw.w_gate = mat(L.gate);
    lw.w_up = mat(L.up);
    lw.w_down = mat(L.down);
    w.layers.push_back(lw);
  }
  w.out_norm = own(m.out_norm);
  w.output = m.output.defined() ? mat(m.output) : w.tok_embd;
  RME_RETURN_IF_ERROR(write_hf_model(model, nullptr, dir, dtype));
  if (tokenizer_dir.empty()) return Status::Ok();
  for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"}) {
    const std::string src = tokenizer_dir + "/" + f;
    if (!file_exists(src)) continue;
    RME_ASSIGN_OR_RETURN(std::string bytes, read_file(src));
    RME_RETURN_IF_ERROR(write_file_atomic(dir + "/" + f, bytes));
  }
  return Status::Ok();
}

}  // namespace rme
