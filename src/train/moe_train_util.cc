// train: shared MoE training helpers.
#include "train/moe_train_util.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>

#include "core/file.h"
#include "core/hash.h"
#include "core/timer.h"
#include "formats/model_io.h"
#include "moefy/router_init.h"
#include "report/plot.h"
#include "tensor/half.h"
#include "train/export.h"
#include "train/moe_torch.h"
#include "train/train_util.h"

namespace rme {

void set_lr(torch::optim::AdamW& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

std::vector<FinetunePhase> finetune_phases(const FinetuneOptions& o) {
  std::vector<FinetunePhase> out;
  for (int r = 0; r < o.rounds; ++r) {
    const double decay = std::pow(o.decay, r);
    if (r > 0) out.push_back({true, r, o.router_steps, o.router_lr * decay});
    out.push_back({false, r, o.steps, o.lr * decay});
  }
  return out;
}

// KL(softmax(score / tau) || softmax(logits)), mean over tokens.
torch::Tensor distill_loss(const torch::Tensor& logits, const torch::Tensor& score, double tau) {
  auto p = torch::softmax(score / tau, -1);
  return (p * (p.clamp_min(1e-12).log() - torch::log_softmax(logits, -1))).sum(-1).mean();
}

// The dense parent's routing targets for ids [B, T]: per layer the share of |down_proj input|
// mass in each expert's channels; score = its mean over layers (argmax = the oracle expert, as
// the engine's add_expert_mass). Also each layer's FFN input and per-layer label.
Targets dense_targets(LlamaTorch& dense, const std::vector<torch::Tensor>& masks,
                      const torch::Tensor& ids) {
  torch::NoGradGuard ng;
  Targets t;
  dense->forward(ids, [&](int l, const torch::Tensor& h2, const torch::Tensor& act) {
    auto a = act.abs();
    auto mass = torch::matmul(a, masks[l]) / a.sum(-1, true).clamp_min(1e-20);
    t.score = t.score.defined() ? t.score + mass : mass;
    t.h2.push_back(h2);
    t.labels.push_back(mass.argmax(-1));
    return torch::Tensor();
  });
  t.score = t.score / static_cast<double>(masks.size());
  return t;
}

TargetBatch target_batch(const RouterTargets& tg, const std::vector<TargetRows>& rows,
                         bool with_gates) {
  const int64_t B = static_cast<int64_t>(rows.size()), T = tg.seq_len(), E = tg.n_expert();
  const int L = tg.n_layer(), D = tg.gate_dim();
  TargetBatch t;
  t.ids = torch::empty({B, T}, torch::kInt64);
  t.score = torch::empty({B, T, E}, torch::kFloat32);
  auto* ids = t.ids.data_ptr<int64_t>();
  float* score = t.score.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < T; ++i) ids[b * T + i] = rows[b].ids[i];
    std::memcpy(score + b * T * E, rows[b].score, sizeof(float) * T * E);
  }
  if (!with_gates) return t;
  RME_CHECK(D > 0);
  for (int l = 0; l < L; ++l) {
    auto lab = torch::empty({B, T}, torch::kInt64);
    auto h2 = torch::empty({B, T, D}, torch::kFloat32);
    auto* lp = lab.data_ptr<int64_t>();
    float* hp = h2.data_ptr<float>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < T; ++i) {
        lp[b * T + i] = rows[b].labels[i * L + l];
        const uint16_t* g = rows[b].gate + (i * L + l) * D;
        for (int j = 0; j < D; ++j) hp[(b * T + i) * D + j] = f16_to_f32(g[j]);
      }
    t.labels.push_back(lab);
    t.h2.push_back(h2);
  }
  return t;
}

int64_t PoolOrder::at(int64_t j) {
  const int64_t e = j / n_;
  if (e != epoch_) {
    perm_.resize(n_);
    std::iota(perm_.begin(), perm_.end(), int64_t{0});
    std::mt19937_64 rng(splitmix(seed_ * 1000003u + static_cast<uint64_t>(e)));
    std::shuffle(perm_.begin(), perm_.end(), rng);
    epoch_ = e;
  }
  return perm_[j % n_];
}

std::vector<TargetRows> PoolOrder::batch(const RouterTargets& tg, int step, int batch) {
  std::vector<TargetRows> rows;
  for (int b = 0; b < batch; ++b) rows.push_back(tg.pool(at(int64_t{step} * batch + b)));
  return rows;
}

std::string pct(double x) {
  if (std::isnan(x)) return "-";
  char b[16];
  std::snprintf(b, sizeof(b), "%.1f%%", 100 * x);
  return b;
}

Status open_checkpoint(const std::string& path, const std::string& fingerprint,
                       torch::serialize::InputArchive& a) {
  RME_RETURN_IF_ERROR(load_archive(a, path));
  c10::IValue fp;
  a.read("fingerprint", fp);
  if (!fp.isString() || fp.toStringRef() != fingerprint)
    return invalid_argument(path + ": made with other options; use a new --out");
  return Status::Ok();
}

Result<DType> out_dtype(const std::string& name, const Model& m) {
  if (name.empty()) {
    DType d = m.weights.layers[0].wq.dtype;
    return dtype_is_quantized(d) ? DType::kF32 : d;
  }
  auto d = dtype_from_name(name);
  if (!d || dtype_is_quantized(*d)) return invalid_argument("--export-type " + name);
  return *d;
}

// The MoE `src` with new backbone/expert/router/gate parameters, written as a safetensors MoE.
Status write_moe(const Model& src, LlamaTorch* backbone, MoeExperts* experts, LlamaTorch* router,
                 const torch::Tensor& gates, const std::string& dir, DType type) {
  Model out = backbone ? model_from_torch(**backbone) : Model{};
  if (!backbone) {  // keep the source backbone and experts as they are
    out.config = src.config;
    out.weights = src.weights;
    out.buffers = src.buffers;
  }
  out.files = src.files;
  out.config.rope_style = backbone ? RopeStyle::kHalf : src.config.rope_style;
  out.moe = src.moe;
  out.source = src.source;
  out.format = src.format;
  for (int l = 0; l < out.config.n_layer; ++l) {
    out.weights.layers[l].experts = src.weights.layers[l].experts;
    out.weights.layers[l].layer_gate = src.weights.layers[l].layer_gate;
  }
  if (experts) (*experts)->export_into(out);
  if (router) {
    out.router = std::make_shared<Model>(model_from_torch(**router));
    out.router->config.rope_style = out.config.rope_style;  // routers follow the backbone
  }
  if (backbone == nullptr && src.config.rope_style != RopeStyle::kHalf)
    return invalid_argument(src.source + ": train-router writes HF MoEs; convert the GGUF first");
  if (gates.defined()) {
    out.moe.has_layer_gate = true;
    for (int l = 0; l < out.config.n_layer; ++l)
      out.weights.layers[l].layer_gate = own_matrix(out, gates[l]);
  }
  RME_RETURN_IF_ERROR(write_hf_model(out, nullptr, dir, type));
  if (is_directory(src.source)) RME_RETURN_IF_ERROR(copy_tokenizer_files(src.source, dir).status());
  return Status::Ok();
}

Result<MoeSetup> open_moe(const std::string& moe_dir, const std::string& corpus, int seq_len,
                          int threads, bool allow_dense) {
  configure_threads(threads);
  MoeSetup s;
  RME_ASSIGN_OR_RETURN(LoadedModel lm, load_model(moe_dir));
  s.moe = std::move(lm.model);
  if (!s.moe->moe.is_moe() && !allow_dense)
    return invalid_argument(moe_dir + ": not an MoE (run rme moefy)");
  int n_vocab = 0;
  RME_ASSIGN_OR_RETURN(s.domains, open_domains(corpus, seq_len, {}, n_vocab));
  if (n_vocab != s.moe->config.n_vocab)
    return invalid_argument(corpus + ": corpus vocabulary " + std::to_string(n_vocab) +
                            " != model vocabulary " + std::to_string(s.moe->config.n_vocab));
  if (seq_len > s.moe->config.n_ctx) return invalid_argument("--seq-len exceeds the model context");
  return s;
}

}  // namespace rme
