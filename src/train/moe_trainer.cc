// train: router distillation and expert fine-tuning loops.
#include "train/moe_trainer.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/timer.h"
#include "formats/model_io.h"
#include "moefy/router_init.h"
#include "report/plot.h"
#include "train/export.h"
#include "train/moe_torch.h"
#include "train/train_util.h"

namespace rme {
namespace {

double cosine_lr(int step, int steps, int warmup, double lr, double min_lr) {
  if (step < warmup) return lr * (step + 1) / warmup;
  const double p = std::min(1.0, double(step - warmup) / std::max(1, steps - warmup));
  return min_lr + 0.5 * (lr - min_lr) * (1 + std::cos(M_PI * p));
}

void set_lr(torch::optim::AdamW& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

// KL(softmax(score / tau) || softmax(logits)), mean over tokens.
torch::Tensor distill_loss(const torch::Tensor& logits, const torch::Tensor& score, double tau) {
  auto p = torch::softmax(score / tau, -1);
  return (p * (p.clamp_min(1e-12).log() - torch::log_softmax(logits, -1))).sum(-1).mean();
}

// The dense parent's routing targets for ids [B, T]: per layer the share of |down_proj input|
// mass in each expert's channels; score = its mean over layers (argmax = the oracle expert, as
// the engine's add_expert_mass). Also each layer's FFN input and per-layer label.
struct Targets {
  torch::Tensor score;  // [B, T, E]
  std::vector<torch::Tensor> h2, labels;
};
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

std::string pct(double x) {
  char b[16];
  std::snprintf(b, sizeof(b), "%.1f%%", 100 * x);
  return b;
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
  return is_directory(src.source) ? copy_tokenizer_files(src.source, dir) : Status::Ok();
}

struct Setup {
  std::unique_ptr<Model> moe;
  std::vector<Domain> domains;
};

Result<Setup> open_moe(const std::string& moe_dir, const std::string& corpus, int seq_len,
                       int threads, bool allow_dense = false) {
  configure_threads(threads);
  Setup s;
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

}  // namespace

Status train_router(const RouterTrainOptions& o) {
  RME_ASSIGN_OR_RETURN(Setup s, open_moe(o.moe_dir, o.corpus_dir, o.seq_len, o.threads));
  const Model& moe = *s.moe;
  const int E = moe.moe.n_expert, L = moe.config.n_layer, D = moe.config.n_embd;
  const std::string dense_path = o.dense_path.empty() ? moe.moe.parent : o.dense_path;
  if (dense_path.empty()) return invalid_argument("train-router needs --dense PARENT");
  RME_ASSIGN_OR_RETURN(LoadedModel dl, load_model(dense_path));
  const Model& dense_m = *dl.model;
  if (dense_m.config.n_layer != L || dense_m.config.n_ff != moe.moe.parent_n_ff ||
      dense_m.moe.is_moe() || dense_m.config.n_vocab != moe.config.n_vocab)
    return invalid_argument(dense_path + ": not the dense parent of " + o.moe_dir);
  LlamaTorch dense(torch_config(dense_m.config));
  dense->load_from(dense_m);
  dense->eval();
  const auto masks = expert_masks(moe.moe);

  RouterShape shape = default_router_shape(moe.config);
  if (o.router_dim > 0) shape.n_embd = o.router_dim, shape.n_ff = 2 * o.router_dim;
  if (o.router_ff > 0) shape.n_ff = o.router_ff;
  shape.n_layer = o.router_layers;
  shape.n_head = o.router_heads;
  LlamaConfig rc = router_config(moe.config, E, shape);
  RME_RETURN_IF_ERROR(rc.validate().with_context("router"));
  LlamaTorch router(torch_config(rc));
  router->init_weights(o.seed);
  auto gates = torch::zeros({L, E, D}, torch::requires_grad());
  std::vector<torch::Tensor> params = router->parameters();
  params.push_back(gates);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));

  const std::string tdir = o.out_dir + "/train";
  std::error_code ec;
  std::filesystem::create_directories(tdir, ec);
  if (ec) return io_error(tdir + ": " + ec.message());
  const std::string ckpt = tdir + "/router_checkpoint.pt";
  const std::string fingerprint = nlohmann::json{{"moe", o.moe_dir}, {"steps", o.steps},
                                                 {"batch", o.batch}, {"seq_len", o.seq_len},
                                                 {"lr", o.lr}, {"tau", o.tau}, {"seed", o.seed},
                                                 {"dim", shape.n_embd}}.dump();
  Table log{{"step", "loss", "train_acc"}, {}};
  Table val{{"step"}, {}};
  for (const auto& d : s.domains)
    if (d.has_valid) val.columns.push_back(d.name);
  val.columns.push_back("mean");
  val.columns.push_back("layer_gate_mean");
  int start = 0;
  if (file_exists(ckpt)) {
    try {
      torch::serialize::InputArchive a;
      a.load_from(ckpt);
      c10::IValue fp;
      a.read("fingerprint", fp);
      if (!fp.isString() || fp.toStringRef() != fingerprint)
        return invalid_argument(ckpt + ": made with other options; use a new --out");
      router->load(a);
      torch::Tensor g, st;
      a.read("gates", g);
      a.read("step", st);
      torch::NoGradGuard ng;
      gates.copy_(g);
      torch::serialize::InputArchive oa;
      a.read("optimizer", oa);
      opt.load(oa);
      start = static_cast<int>(st.item<int64_t>());
    } catch (const std::exception& e) {
      return corrupt(ckpt + ": " + e.what());
    }
    std::fprintf(stderr, "resuming %s at step %d\n", ckpt.c_str(), start);
  }

  // Accuracy of the router (and layer gates) against the oracle labels on held-out text.
  auto evaluate = [&](int step, bool print) {
    torch::NoGradGuard ng;
    router->eval();
    std::vector<double> row = {double(step)};
    double sum = 0, gsum = 0;
    int n = 0;
    if (print) std::printf("%-10s %9s %9s %12s %12s\n", "domain", "tokens", "router", "layer-gate", "top-oracle");
    for (const auto& d : s.domains) {
      if (!d.has_valid) continue;
      auto all = valid_windows(d.valid, o.seq_len, o.eval_tokens);
      int64_t hit = 0, ghit = 0, tok = 0;
      torch::Tensor counts = torch::zeros({E}, torch::kInt64);
      for (int64_t b = 0; b < all.size(0); b += o.batch) {
        auto ids = all.narrow(0, b, std::min<int64_t>(o.batch, all.size(0) - b))
                       .narrow(1, 0, o.seq_len);
        Targets t = dense_targets(dense, masks, ids);
        auto label = t.score.argmax(-1);
        hit += (router->forward(ids).argmax(-1) == label).sum().item<int64_t>();
        for (int l = 0; l < L; ++l)
          ghit += (torch::matmul(t.h2[l], gates[l].t()).argmax(-1) == t.labels[l])
                      .sum()
                      .item<int64_t>();
        counts += torch::bincount(label.reshape(-1), {}, E);
        tok += label.numel();
      }
      const double acc = double(hit) / tok, gacc = double(ghit) / (tok * L);
      row.push_back(acc);
      sum += acc;
      gsum += gacc;
      ++n;
      if (print)
        std::printf("%-10s %9lld %9s %12s %12s\n", d.name.c_str(), static_cast<long long>(tok),
                    pct(acc).c_str(), pct(gacc).c_str(),
                    pct(counts.max().item<int64_t>() / double(tok)).c_str());
    }
    row.push_back(n ? sum / n : NAN);
    row.push_back(n ? gsum / n : NAN);
    if (print)
      std::printf("%-10s %9s %9s %12s   (router: top-1 vs oracle expert; layer-gate: per-layer "
                  "label; top-oracle: most frequent oracle expert's share)\n",
                  "mean", "", pct(row[row.size() - 2]).c_str(), pct(row.back()).c_str());
    val.rows.push_back(row);
    router->train();
  };
  auto save = [&](int step) -> Status {
    torch::serialize::OutputArchive a;
    router->save(a);
    a.write("gates", gates.detach());
    a.write("step", torch::tensor(static_cast<int64_t>(step)));
    a.write("fingerprint", c10::IValue(fingerprint));
    torch::serialize::OutputArchive oa;
    opt.save(oa);
    a.write("optimizer", oa);
    RME_RETURN_IF_ERROR(save_archive_atomic(a, ckpt));
    RME_RETURN_IF_ERROR(write_csv(tdir + "/router_log.csv", log));
    RME_RETURN_IF_ERROR(write_csv(tdir + "/router_val.csv", val));
    std::vector<int> cols;
    for (size_t i = 1; i < val.columns.size(); ++i) cols.push_back(static_cast<int>(i));
    (void)plot_png(tdir + "/router_val.csv", val,
                   {"router accuracy vs oracle expert (held-out)", "step", "accuracy", 0, cols,
                    false, false},
                   tdir + "/router_accuracy.png");
    (void)plot_png(tdir + "/router_log.csv", log,
                   {"router distillation loss", "step", "KL + gate CE", 0, {1}, false, false},
                   tdir + "/router_loss.png");
    return Status::Ok();
  };

  const double t0 = now_seconds();
  router->train();
  for (int step = start; step < o.steps; ++step) {
    set_lr(opt, cosine_lr(step, o.steps, o.warmup, o.lr, o.min_lr));
    auto ids = sample_batch(s.domains, o.seed, step, 0, o.batch, o.seq_len).narrow(1, 0, o.seq_len);
    Targets t = dense_targets(dense, masks, ids);
    auto logits = router->forward(ids);
    auto loss = distill_loss(logits, t.score, o.tau);
    for (int l = 0; l < L; ++l)
      loss = loss + torch::nn::functional::cross_entropy(
                        torch::matmul(t.h2[l], gates[l].t()).reshape({-1, E}),
                        t.labels[l].reshape({-1})) / L;
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    opt.step();
    const double acc =
        (logits.argmax(-1) == t.score.argmax(-1)).to(torch::kFloat64).mean().item<double>();
    log.rows.push_back({double(step + 1), loss.item<double>(), acc});
    const double el = now_seconds() - t0;
    char extra[96];
    std::snprintf(extra, sizeof(extra), "loss %.4f | batch acc %s", loss.item<double>(),
                  pct(acc).c_str());
    progress_line("train-router", step + 1, o.steps, extra,
                  double(step + 1 - start) * o.batch * o.seq_len / el, "tok/s", el);
    if ((step + 1) % o.checkpoint_every == 0 || step + 1 == o.steps) {
      std::fprintf(stderr, "\n");
      evaluate(step + 1, false);
      RME_RETURN_IF_ERROR(save(step + 1));
    }
  }
  std::fprintf(stderr, "\n");
  evaluate(o.steps, true);
  RME_RETURN_IF_ERROR(save(o.steps));
  RME_ASSIGN_OR_RETURN(DType type, out_dtype(o.export_dtype, moe));
  RME_RETURN_IF_ERROR(write_moe(moe, nullptr, nullptr, &router, gates.detach(), o.out_dir, type));
  std::printf("wrote %s (router: %d layer, %d heads, width %d, %.2fM parameters)\n",
              o.out_dir.c_str(), rc.n_layer, rc.n_head, rc.n_embd, rc.n_params() / 1e6);
  return Status::Ok();
}

namespace {

// One phase of finetune: expert tuning (LM loss, router frozen) or router tuning (distillation
// from the current experts' activation mass, backbone frozen).
struct Phase {
  bool router;
  int round, steps;
  double lr;
};

std::vector<Phase> phases_of(const FinetuneOptions& o) {
  std::vector<Phase> out;
  for (int r = 0; r < o.rounds; ++r) {
    const double decay = std::pow(o.decay, r);
    if (r > 0) out.push_back({true, r, o.router_steps, o.router_lr * decay});
    out.push_back({false, r, o.steps, o.lr * decay});
  }
  return out;
}

}  // namespace

Status finetune_moe(const FinetuneOptions& o) {
  RME_ASSIGN_OR_RETURN(Setup s,
                       open_moe(o.moe_dir, o.corpus_dir, o.seq_len + 1, o.threads, true));
  const Model& moe = *s.moe;
  const bool has_experts = moe.moe.is_moe();
  const bool layer_gate = o.routing == "layer-gate";
  if (o.routing != "router" && !layer_gate)
    return invalid_argument("--routing " + o.routing + ": expected router or layer-gate");
  if (has_experts && !layer_gate && !moe.router)
    return invalid_argument(o.moe_dir + ": no router (run rme train-router first)");
  if (has_experts && layer_gate && !moe.moe.has_layer_gate)
    return invalid_argument(o.moe_dir + ": no layer-wise gates (run rme train-router first)");
  const int k = moe.moe.top_k, L = moe.config.n_layer;
  LlamaTorch backbone(torch_config(moe.config));
  backbone->load_from(moe);
  std::optional<MoeExperts> experts;
  if (has_experts) experts.emplace(moe);
  // A router that never changes stands in when there is none to tune (keeps one code path).
  const bool tune_router = has_experts && !layer_gate;
  LlamaTorch router(torch_config(moe.router ? moe.router->config
                                            : router_config(moe.config, std::max(1, moe.moe.n_expert),
                                                            default_router_shape(moe.config))));
  if (moe.router) router->load_from(*moe.router);
  std::vector<torch::Tensor> gate_w;  // [l] frozen layer-wise gates [E, D]
  if (layer_gate)
    for (int l = 0; l < L; ++l) {
      const MatView& g = moe.weights.layers[l].layer_gate;
      gate_w.push_back(torch::from_blob(const_cast<void*>(g.data), {g.n_out, g.n_in},
                                        torch::kFloat32).clone());
    }
  torch::Tensor gates;  // layer-wise baseline gates pass through unchanged
  std::vector<torch::Tensor> lm_params = backbone->parameters();
  if (experts)
    for (auto& p : (*experts)->parameters()) lm_params.push_back(p);

  // Logits of the MoE over ids [B, T] routed by the (frozen) router; `mass` collects, per layer,
  // each expert's share of activation mass (shared channels included in the total).
  auto moe_forward = [&](const torch::Tensor& ids, torch::Tensor* score) {
    if (!experts) return backbone->forward(ids);
    torch::Tensor route;
    if (!layer_gate) {
      torch::NoGradGuard ng;
      route = route_weights(router->forward(ids), k);
    }
    return backbone->forward(ids, [&](int l, const torch::Tensor& h2, const torch::Tensor& act) {
      torch::Tensor mass;
      torch::Tensor r = route;
      if (layer_gate) {
        torch::NoGradGuard ng;
        r = route_weights(torch::matmul(h2, gate_w[l].t()), k);
      }
      auto y = (*experts)->forward(l, h2, r, score ? &mass : nullptr);
      if (score) {
        auto share = mass / (mass.sum(-1, true) + act.detach().abs().sum(-1, true)).clamp_min(1e-20);
        *score = score->defined() ? *score + share / L : share / L;
      }
      return y;
    });
  };
  auto lm_loss = [&](const torch::Tensor& ids) {
    const int64_t T = ids.size(1) - 1;
    auto logits = moe_forward(ids.narrow(1, 0, T), nullptr);
    return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                ids.narrow(1, 1, T).reshape({-1}));
  };

  std::vector<Phase> phases = phases_of(o);
  if (!tune_router)
    phases.erase(std::remove_if(phases.begin(), phases.end(), [](const Phase& p) { return p.router; }),
                 phases.end());
  int total = 0;
  for (const Phase& p : phases) total += p.steps;
  const std::string tdir = o.out_dir + "/train";
  std::error_code ec;
  std::filesystem::create_directories(tdir, ec);
  if (ec) return io_error(tdir + ": " + ec.message());
  const std::string ckpt = tdir + "/finetune_checkpoint.pt";
  const std::string fingerprint =
      nlohmann::json{{"moe", o.moe_dir}, {"rounds", o.rounds}, {"steps", o.steps},
                     {"router_steps", o.router_steps}, {"batch", o.batch}, {"seq_len", o.seq_len},
                     {"lr", o.lr}, {"router_lr", o.router_lr}, {"seed", o.seed}}
          .dump();
  Table log{{"step", "round", "phase", "loss"}, {}};
  Table val{{"step"}, {}};
  for (const auto& d : s.domains)
    if (d.has_valid) val.columns.push_back(d.name);
  val.columns.push_back("mean");

  int phase_i = 0, phase_step = 0, global = 0;
  std::unique_ptr<torch::optim::AdamW> opt;
  auto make_opt = [&](const Phase& p) {
    opt = std::make_unique<torch::optim::AdamW>(
        p.router ? router->parameters() : lm_params,
        torch::optim::AdamWOptions(p.lr).weight_decay(o.weight_decay));
  };
  if (file_exists(ckpt)) {
    try {
      torch::serialize::InputArchive a;
      a.load_from(ckpt);
      c10::IValue fp;
      a.read("fingerprint", fp);
      if (!fp.isString() || fp.toStringRef() != fingerprint)
        return invalid_argument(ckpt + ": made with other options; use a new --out");
      torch::serialize::InputArchive ab, ae, ar, ao;
      a.read("backbone", ab);
      a.read("experts", ae);
      a.read("router", ar);
      backbone->load(ab);
      if (experts) (*experts)->load(ae);
      router->load(ar);
      torch::Tensor pos, lg, vl;
      a.read("position", pos);
      phase_i = static_cast<int>(pos[0].item<int64_t>());
      phase_step = static_cast<int>(pos[1].item<int64_t>());
      global = static_cast<int>(pos[2].item<int64_t>());
      a.read("log", lg);
      a.read("val", vl);
      for (int64_t r = 0; r < lg.size(0); ++r)
        log.rows.emplace_back(lg[r].data_ptr<double>(), lg[r].data_ptr<double>() + lg.size(1));
      for (int64_t r = 0; r < vl.size(0); ++r)
        val.rows.emplace_back(vl[r].data_ptr<double>(), vl[r].data_ptr<double>() + vl.size(1));
      if (phase_i < static_cast<int>(phases.size())) {
        make_opt(phases[phase_i]);
        a.read("optimizer", ao);
        opt->load(ao);
      }
    } catch (const std::exception& e) {
      return corrupt(ckpt + ": " + e.what());
    }
    std::fprintf(stderr, "resuming %s at step %d of %d\n", ckpt.c_str(), global, total);
  }

  auto evaluate = [&](bool print) {
    torch::NoGradGuard ng;
    std::vector<double> row = {double(global)};
    double sum = 0;
    int n = 0;
    for (const auto& d : s.domains) {
      if (!d.has_valid) continue;
      auto all = valid_windows(d.valid, o.seq_len, o.eval_tokens);
      double l = 0;
      for (int64_t b = 0; b < all.size(0); b += o.batch) {
        auto ids = all.narrow(0, b, std::min<int64_t>(o.batch, all.size(0) - b));
        l += lm_loss(ids).item<double>() * ids.size(0);
      }
      l /= all.size(0);
      row.push_back(l);
      sum += l;
      ++n;
      if (print)
        std::printf("%-10s loss %.4f nats/token, ~%.4f bits/byte\n", d.name.c_str(), l,
                    l / std::log(2.0) / d.bytes_per_token);
    }
    row.push_back(n ? sum / n : NAN);
    val.rows.push_back(row);
  };
  auto to_tensor = [](const std::vector<std::vector<double>>& rows, size_t cols) {
    auto t = torch::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(cols)},
                          torch::kFloat64);
    for (size_t r = 0; r < rows.size(); ++r)
      for (size_t c = 0; c < cols; ++c) t[r][c] = rows[r][c];
    return t;
  };
  auto save = [&]() -> Status {
    torch::serialize::OutputArchive a, ab, ae, ar, ao;
    backbone->save(ab);
    if (experts) (*experts)->save(ae);
    router->save(ar);
    a.write("backbone", ab);
    a.write("experts", ae);
    a.write("router", ar);
    if (opt) {
      opt->save(ao);
      a.write("optimizer", ao);
    }
    a.write("position", torch::tensor({int64_t{phase_i}, int64_t{phase_step}, int64_t{global}}));
    a.write("log", to_tensor(log.rows, log.columns.size()));
    a.write("val", to_tensor(val.rows, val.columns.size()));
    a.write("fingerprint", c10::IValue(fingerprint));
    RME_RETURN_IF_ERROR(save_archive_atomic(a, ckpt));
    RME_RETURN_IF_ERROR(write_csv(tdir + "/finetune_log.csv", log));
    RME_RETURN_IF_ERROR(write_csv(tdir + "/finetune_val.csv", val));
    std::vector<int> cols;
    for (size_t i = 1; i < val.columns.size(); ++i) cols.push_back(static_cast<int>(i));
    (void)plot_png(tdir + "/finetune_val.csv", val,
                   {"MoE validation loss per domain (router routing)", "step", "nats/token", 0,
                    cols, false, false},
                   tdir + "/finetune_val.png");
    (void)plot_png(tdir + "/finetune_log.csv", log,
                   {"finetune training loss (expert phases: LM; router phases: KL)", "step",
                    "loss", 0, {3}, false, false},
                   tdir + "/finetune_loss.png");
    return Status::Ok();
  };

  if (global == 0) evaluate(false);
  const double t0 = now_seconds();
  const int global0 = global;
  for (; phase_i < static_cast<int>(phases.size()); ++phase_i, phase_step = 0) {
    const Phase& p = phases[phase_i];
    if (!opt || phase_step == 0) make_opt(p);
    for (; phase_step < p.steps; ++phase_step) {
      set_lr(*opt, cosine_lr(phase_step, p.steps, std::min(o.warmup, p.steps / 4 + 1), p.lr,
                             p.lr * 0.1));
      auto ids = sample_batch(s.domains, o.seed + 7919 * phase_i, phase_step, 0, o.batch,
                              o.seq_len);
      torch::Tensor loss;
      if (p.router) {
        torch::Tensor score;
        {
          torch::NoGradGuard ng;
          moe_forward(ids.narrow(1, 0, o.seq_len), &score);
        }
        loss = distill_loss(router->forward(ids.narrow(1, 0, o.seq_len)), score, o.tau);
      } else {
        loss = lm_loss(ids);
      }
      opt->zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(p.router ? router->parameters() : lm_params, 1.0);
      opt->step();
      ++global;
      log.rows.push_back({double(global), double(p.round), p.router ? 1.0 : 0.0, loss.item<double>()});
      const double el = now_seconds() - t0;
      char extra[96];
      std::snprintf(extra, sizeof(extra), "round %d %s | loss %.4f", p.round,
                    p.router ? "router" : "experts", loss.item<double>());
      progress_line("finetune", global, total, extra,
                    double(global - global0) * o.batch * o.seq_len / el, "tok/s", el);
      const bool end_phase = phase_step + 1 == p.steps;
      if (global % o.checkpoint_every == 0 || end_phase) {
        if (end_phase) {
          ++phase_step;  // the checkpoint records the next position
          std::fprintf(stderr, "\n");
          evaluate(false);
        }
        RME_RETURN_IF_ERROR(save());
        if (end_phase) --phase_step;
      }
      if (global == o.kill_at_step) std::raise(SIGKILL);
    }
  }
  std::fprintf(stderr, "\n");
  evaluate(true);
  opt.reset();
  RME_RETURN_IF_ERROR(save());
  RME_ASSIGN_OR_RETURN(DType type, out_dtype(o.export_dtype, moe));
  RME_RETURN_IF_ERROR(write_moe(moe, &backbone, experts ? &*experts : nullptr,
                                moe.router ? &router : nullptr, gates, o.out_dir, type));
  std::printf("wrote %s\n", o.out_dir.c_str());
  return Status::Ok();
}

}  // namespace rme
