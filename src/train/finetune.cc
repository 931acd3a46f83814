// train: `rme finetune` — expert tuning with the router frozen, alternating with router tuning.
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/file.h"
#include "core/timer.h"
#include "formats/model_io.h"
#include "moefy/router_init.h"
#include "report/plot.h"
#include "train/export.h"
#include "train/moe_torch.h"
#include "train/moe_train_util.h"
#include "train/moe_trainer.h"
#include "train/train_util.h"

namespace rme {

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

  std::vector<Phase> phases = phases_of(o);
  if (!tune_router)
    phases.erase(
        std::remove_if(phases.begin(), phases.end(), [](const Phase& p) { return p.router; }),
        phases.end());
  int total = 0;
  for (const Phase& p : phases) total += p.steps;
  const std::string tdir = o.out_dir + "/train";
  std::error_code ec;
  std::filesystem::create_directories(tdir, ec);
  if (ec) return io_error(tdir + ": " + ec.message());
  const std::string ckpt = tdir + "/finetune_checkpoint.pt";
  const std::string fingerprint =
      nlohmann::json{{"moe", o.moe_dir}, {"rounds", o.rounds},
                     {"steps", o.steps}, {"router_steps", o.router_steps},
                     {"batch", o.batch}, {"seq_len", o.seq_len},
                     {"lr", o.lr},       {"router_lr", o.router_lr},
                     {"seed", o.seed},   {"top_k", k}}
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
      RME_RETURN_IF_ERROR(open_checkpoint(ckpt, fingerprint, a));
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
      log.rows = tensor_to_rows(lg);
      val.rows = tensor_to_rows(vl);
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
    // The end of the last phase was just evaluated: print that row instead of adding a copy.
    const bool again = !val.rows.empty() && val.rows.back()[0] == double(global);
    if (again && !print) return;
    if (again) val.rows.pop_back();
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
    a.write("log", rows_to_tensor(log.rows, log.columns.size()));
    a.write("val", rows_to_tensor(val.rows, val.columns.size()));
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
                   {"finetune training loss (expert phases: LM; router phases: KL)",
                    "step",
                    "loss",
                    0,
                    {3},
                    false,
                    false},
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
