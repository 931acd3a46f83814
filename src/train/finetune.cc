// train: `rme finetune` — expert tuning with the router frozen, alternating with router tuning.
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/file.h"
#include "core/timer.h"
#include "formats/model_io.h"
#include "moefy/router_init.h"
#include "report/plot.h"
#include "train/export.h"
#include "train/finetune_run.h"
#include "train/moe_torch.h"
#include "train/moe_train_util.h"
#include "train/moe_trainer.h"
#include "train/train_util.h"

namespace rme {

namespace {

int64_t n_elements(const MatView& v) { return v.n_out * v.n_in; }

// What the full-precision path holds: every parameter in f32 with its gradient and two AdamW
// moments, and one batch's activations (autograd keeps about 16 x D and 6 x the active FFN width
// per token and layer, and the logits twice).
int64_t full_finetune_bytes(const Model& m, int batch, int seq_len) {
  const LlamaConfig& c = m.config;
  int64_t params =
              n_elements(m.weights.tok_embd) + (c.tied_output ? 0 : n_elements(m.weights.output)),
          active_ff = 0;
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = m.weights.layers[l];
    for (const MatView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
      params += n_elements(*v);
    int64_t widest = 0;
    for (const ExpertWeights& x : L.experts) {
      params += n_elements(x.gate) + n_elements(x.up) + n_elements(x.down);
      widest = std::max(widest, x.gate.n_out);
    }
    active_ff = std::max(active_ff, L.w_gate.n_out + widest * std::max(1, m.moe.top_k));
  }
  const int64_t tokens = int64_t{batch} * seq_len;
  return params * 16 +
         tokens * 4 * (c.n_layer * (16 * c.n_embd + 6 * active_ff) + 2 * int64_t{c.n_output()});
}

int64_t mem_available_bytes() {
  auto text = read_file("/proc/meminfo");
  if (!text.ok()) return int64_t{1} << 62;
  const size_t at = text->find("MemAvailable:");
  if (at == std::string::npos) return int64_t{1} << 62;
  return std::atoll(text->c_str() + at + 13) * 1024;
}

}  // namespace

Status finetune_moe(const FinetuneOptions& o) {
  RME_ASSIGN_OR_RETURN(MoeSetup s,
                       open_moe(o.moe_dir, o.corpus_dir, o.seq_len + 1, o.threads, true));
  const bool has_experts = s.moe->moe.is_moe();
  if (o.top_k != 0) {
    if (!has_experts) return invalid_argument(o.moe_dir + ": --top-k needs an MoE");
    if (o.top_k < 1 || o.top_k > s.moe->moe.n_expert)
      return invalid_argument("--top-k " + std::to_string(o.top_k) + " outside 1.." +
                              std::to_string(s.moe->moe.n_expert));
    s.moe->moe.top_k = o.top_k;  // tuned and exported with it
  }
  if (o.memory != "auto" && o.memory != "full" && o.memory != "bounded")
    return invalid_argument("--memory " + o.memory + ": expected auto, full or bounded");
  const int64_t full = full_finetune_bytes(*s.moe, o.batch, o.seq_len),
                avail = mem_available_bytes();
  if (o.memory == "bounded" ||
      (o.memory == "auto" && s.moe->moe.is_moe() && full > avail / 10 * 8)) {
    std::fprintf(stderr,
                 "finetune: the full-precision path would need %.1f GB (%.1f GB available): "
                 "bounded memory\n",
                 full / 1e9, avail / 1e9);
    FinetuneOptions b = o;
    if (b.memory_budget <= 0) b.memory_budget = avail;
    return finetune_bounded(b, std::move(s));
  }
  const Model& moe = *s.moe;
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
  LlamaTorch router(torch_config(moe.router
                                     ? moe.router->config
                                     : router_config(moe.config, std::max(1, moe.moe.n_expert),
                                                     default_router_shape(moe.config))));
  if (moe.router) router->load_from(*moe.router);
  std::vector<torch::Tensor> gate_w;  // [l] frozen layer-wise gates [E, D]
  if (layer_gate)
    for (int l = 0; l < L; ++l) gate_w.push_back(tensor_from(moe.weights.layers[l].layer_gate));
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
        auto share =
            mass / (mass.sum(-1, true) + act.detach().abs().sum(-1, true)).clamp_min(1e-20);
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

  std::vector<FinetunePhase> phases = finetune_phases(o);
  if (!tune_router)
    phases.erase(std::remove_if(phases.begin(), phases.end(),
                                [](const FinetunePhase& p) { return p.router; }),
                 phases.end());
  int total = 0;
  for (const FinetunePhase& p : phases) total += p.steps;
  const std::string fingerprint =
      nlohmann::json{{"moe", o.moe_dir}, {"rounds", o.rounds},
                     {"steps", o.steps}, {"router_steps", o.router_steps},
                     {"batch", o.batch}, {"seq_len", o.seq_len},
                     {"lr", o.lr},       {"router_lr", o.router_lr},
                     {"seed", o.seed},   {"top_k", k}}
          .dump();
  RME_ASSIGN_OR_RETURN(
      FinetuneRun run,
      FinetuneRun::start(o, s.domains, {"step", "round", "phase", "loss"}, fingerprint));
  int &phase_i = run.phase_i, &phase_step = run.phase_step, &global = run.global;
  Table& log = run.log;
  const std::string& ckpt = run.ckpt;
  std::unique_ptr<torch::optim::AdamW> opt;
  auto make_opt = [&](const FinetunePhase& p) {
    opt = std::make_unique<torch::optim::AdamW>(
        p.router ? router->parameters() : lm_params,
        torch::optim::AdamWOptions(p.lr).weight_decay(o.weight_decay));
  };
  if (file_exists(ckpt)) {
    try {
      torch::serialize::InputArchive a;
      RME_RETURN_IF_ERROR(open_checkpoint(ckpt, fingerprint, a));
      torch::serialize::InputArchive ab, ae, ar, ao;
      a.read("backbone", ab);
      a.read("experts", ae);
      a.read("router", ar);
      backbone->load(ab);
      if (experts) (*experts)->load(ae);
      router->load(ar);
      run.read(a);
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
    run.evaluate(
        s.domains, o, [&](const torch::Tensor& ids) { return lm_loss(ids).item<double>(); }, print);
  };
  auto save = [&]() -> Status {
    torch::serialize::OutputArchive a, ab, ae, ar;
    backbone->save(ab);
    if (experts) (*experts)->save(ae);
    router->save(ar);
    a.write("backbone", ab);
    a.write("experts", ae);
    a.write("router", ar);
    return run.save(a, opt.get(), "finetune training loss (expert phases: LM; router phases: KL)");
  };

  if (global == 0) evaluate(false);
  const double t0 = now_seconds();
  const int global0 = global;
  for (; phase_i < static_cast<int>(phases.size()); ++phase_i, phase_step = 0) {
    const FinetunePhase& p = phases[phase_i];
    if (!opt || phase_step == 0) make_opt(p);
    for (; phase_step < p.steps; ++phase_step) {
      set_lr(*opt,
             cosine_lr(phase_step, p.steps, std::min(o.warmup, p.steps / 4 + 1), p.lr, p.lr * 0.1));
      // Batches depend on the round and the phase's kind, not its index, so a model without a
      // router phase (dense, pruned) sees exactly the expert phases' tokens of the MoE.
      const uint64_t stream = 2 * static_cast<uint64_t>(p.round) + (p.router ? 1 : 0);
      auto ids = sample_batch(s.domains, o.seed + 7919 * stream, phase_step, 0, o.batch, o.seq_len);
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
      log.rows.push_back(
          {double(global), double(p.round), p.router ? 1.0 : 0.0, loss.item<double>()});
      const double el = now_seconds() - t0;
      char extra[96];
      std::snprintf(extra, sizeof(extra), "round %d %s | loss %.4f", p.round,
                    p.router ? "router" : "experts", loss.item<double>());
      progress_line("finetune", global, total, extra,
                    double(global - global0) * o.batch * o.seq_len / el, "tok/s", el, global0);
      RME_RETURN_IF_ERROR(run.end_step(
          o, p.steps, [&] { evaluate(false); }, save));
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
