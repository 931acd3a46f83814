// train: `rme finetune --memory bounded` — expert tuning of a large MoE within a memory bound
// (BoundedMoe: one routed expert trainable at a time, on the windows routed to it most), router
// rounds distilled from the current experts (made once a round) or the engine-made dense targets.
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/timer.h"
#include "formats/model_io.h"
#include "moefy/router_targets.h"
#include "report/plot.h"
#include "train/bounded_moe.h"
#include "train/export.h"
#include "train/finetune_run.h"
#include "train/moe_train_util.h"
#include "train/train_util.h"

namespace rme {

namespace {

// One router round's targets from the MoE as tuned so far: windows [N, T], scores [N, T, E].
// Made once at the round's start (the experts do not change while the router tunes) and kept in
// the checkpoint, since they depend on the router as it was then.
struct RoundPool {
  int phase = -1;  // the phase they were made for
  torch::Tensor ids, score;
};

RoundPool current_targets(const BoundedMoe& bm,
                          const std::function<torch::Tensor(const torch::Tensor&)>& route_of,
                          const std::vector<Domain>& domains, const FinetuneOptions& o,
                          const FinetunePhase& p, int phase) {
  const int64_t per = int64_t{o.batch} * o.seq_len;
  const int64_t want = o.round_target_tokens > 0
                           ? o.round_target_tokens
                           : std::min<int64_t>(int64_t{o.router_steps} * per, 32768);
  const int chunks = static_cast<int>(std::max<int64_t>(1, (want + per - 1) / per));
  std::fprintf(stderr, "finetune: round %d router targets from the current experts, %lld tokens\n",
               p.round, static_cast<long long>(chunks * per));
  std::vector<torch::Tensor> ids, score;
  const double t0 = now_seconds();
  for (int c = 0; c < chunks; ++c) {
    // The windows the full path's router phase of this round reads (stream 2 x round + 1).
    auto w = sample_batch(domains, o.seed + 7919 * (2 * static_cast<uint64_t>(p.round) + 1), c, 0,
                          o.batch, o.seq_len)
                 .narrow(1, 0, o.seq_len);
    score.push_back(bm.expert_scores(w, route_of(w)));
    ids.push_back(w);
    const double el = now_seconds() - t0;
    progress_line("round targets", c + 1, chunks, "all experts' activations",
                  double(c + 1) * per / el, "tok/s", el);
  }
  std::fprintf(stderr, "\n");
  return {phase, torch::cat(ids), torch::cat(score)};
}

}  // namespace

Status finetune_bounded(const FinetuneOptions& o, MoeSetup s) {
  const Model& moe = *s.moe;
  if (o.routing != "router")
    return invalid_argument("--memory bounded tunes Read-ME MoEs routed by their router");
  if (!moe.router) return invalid_argument(o.moe_dir + ": no router (run rme train-router first)");
  const int E = moe.moe.n_expert, k = moe.moe.top_k;
  const DType wt = moe.weights.layers[0].wq.dtype;
  const torch::ScalarType storage = wt == DType::kF16 ? torch::kHalf : torch::kBFloat16;
  LlamaTorch router(torch_config(moe.router->config));
  router->load_from(*moe.router);
  std::vector<FinetunePhase> phases = finetune_phases(o);
  std::unique_ptr<RouterTargets> targets;
  const bool current = o.round_targets != "dense";
  if (o.rounds > 1 && !current) {  // router phases distill from the dense parent's targets
    const std::string dir = o.targets_dir.empty() ? o.moe_dir + "/train/targets" : o.targets_dir;
    auto t = RouterTargets::open(dir);
    if (!t.ok())
      return Status(t.status().code(),
                    t.status().message() +
                        " (--round-targets dense reads train-router's targets: --targets DIR)");
    targets = std::move(*t);
    if (targets->seq_len() != o.seq_len || targets->n_expert() != E)
      return invalid_argument(dir + ": targets of seq_len " + std::to_string(targets->seq_len()) +
                              " for " + std::to_string(targets->n_expert()) + " experts");
  }
  RME_ASSIGN_OR_RETURN(DType type, out_dtype(o.export_dtype, moe));
  std::fprintf(stderr,
               "finetune: bounded memory — frozen weights in %s, read from the file "
               "where it holds them\n",
               storage == torch::kHalf ? "f16" : "bf16");
  BoundedMoe bm(moe, storage);  // keeps the mappings it reads from
  Model shell;
  shell.config = moe.config;
  shell.moe = moe.moe;
  shell.source = moe.source;
  shell.format = moe.format;
  s.moe.reset();
  std::fprintf(stderr, "finetune: %.2f GB held, %.2f GB trainable (f32; x4 with AdamW)\n",
               bm.storage_bytes() / 1e9, bm.trainable_bytes() / 1e9);

  int total = 0;
  for (const FinetunePhase& p : phases) total += p.steps;
  const std::string fingerprint = nlohmann::json{
      {"moe", o.moe_dir},
      {"rounds", o.rounds},
      {"steps", o.steps},
      {"router_steps", o.router_steps},
      {"batch", o.batch},
      {"seq_len", o.seq_len},
      {"lr", o.lr},
      {"router_lr", o.router_lr},
      {"seed", o.seed},
      {"top_k", k},
      {"memory", "bounded"},
      {"targets", targets ? targets->fingerprint() : ""},
      {"round_targets", o.rounds > 1 ? o.round_targets : ""},
      {"round_target_tokens",
       o.round_target_tokens}}.dump();
  RME_ASSIGN_OR_RETURN(
      FinetuneRun run,
      FinetuneRun::start(o, s.domains, {"step", "round", "phase", "loss", "expert"}, fingerprint));
  int &phase_i = run.phase_i, &phase_step = run.phase_step, &global = run.global;
  Table& log = run.log;
  const std::string& ckpt = run.ckpt;

  // Layer groups: the fewest whose largest (expert, group) trainable set, with the group's shared
  // experts, fits in a third of the memory left once the frozen storage is mapped. Every shared
  // expert stays in f32 (4 of its 16 training bytes a parameter); gradients and AdamW (the other
  // 12) exist for one group's.
  const int L = shell.config.n_layer;
  int G = o.layer_groups;
  if (G <= 0) {
    int64_t widest = 0;
    for (int e = 0; e < E; ++e) {
      int64_t n = 0;
      for (int l = 0; l < L; ++l) n += bm.expert_train_bytes(e, l);
      widest = std::max(widest, n);
    }
    const int64_t shared = bm.shared_train_bytes();
    const int64_t room = std::max<int64_t>(1, o.memory_budget / 3 - shared / 4);
    const int64_t per_group = widest + shared / 4 * 3;
    G = static_cast<int>(std::clamp<int64_t>((per_group + room - 1) / room, 1, L));
  }
  G = std::min(G, L);
  // Expert phases give block b of ceil(steps / (E x G)) steps to expert b / G in layer group
  // b % G, each block with a fresh optimizer over the shared experts and that slice.
  auto block_of = [&](const FinetunePhase& p, int step) {
    return std::min(E * G - 1, step / ((p.steps + E * G - 1) / (E * G)));
  };
  int block = -1;
  std::unique_ptr<torch::optim::AdamW> opt;
  auto make_opt = [&](const FinetunePhase& p) {
    opt.reset();  // the last turn's gradients and moments go before the next turn's copies come
    if (!p.router) {
      block = block_of(p, phase_step);
      const int g = block % G;
      bm.select(block / G, g * L / G, (g + 1) * L / G);
    }
    opt = std::make_unique<torch::optim::AdamW>(
        p.router ? router->parameters() : bm.parameters(),
        torch::optim::AdamWOptions(p.lr).weight_decay(o.weight_decay));
  };
  if (G > 1) std::fprintf(stderr, "finetune: each expert tuned in %d groups of layers\n", G);
  RoundPool pool;
  if (file_exists(ckpt)) {
    try {
      torch::serialize::InputArchive a, am, ar, ao;
      RME_RETURN_IF_ERROR(open_checkpoint(ckpt, fingerprint, a));
      a.read("moe", am);
      a.read("router", ar);
      bm.load(am);
      router->load(ar);
      run.read(a);
      torch::Tensor pool_phase;
      if (a.try_read("round_pool_phase", pool_phase) && pool_phase.item<int64_t>() == phase_i) {
        a.read("round_pool_ids", pool.ids);
        a.read("round_pool_score", pool.score);
        pool.phase = phase_i;
      }
      if (phase_i < static_cast<int>(phases.size())) {
        // The saved optimizer is that of the block of the step taken last (the position is the
        // next step's, which may start the next block: the loop then makes its optimizer).
        if (!phases[phase_i].router) block = block_of(phases[phase_i], std::max(0, phase_step - 1));
        opt = std::make_unique<torch::optim::AdamW>(
            phases[phase_i].router ? router->parameters() : bm.parameters(),
            torch::optim::AdamWOptions(phases[phase_i].lr).weight_decay(o.weight_decay));
        a.read("optimizer", ao);
        opt->load(ao);
      }
    } catch (const std::exception& e) {
      return corrupt(ckpt + ": " + e.what());
    }
    std::fprintf(stderr, "resuming %s at step %d of %d\n", ckpt.c_str(), global, total);
  }

  auto route_of = [&](const torch::Tensor& ids) {
    torch::NoGradGuard ng;
    return route_weights(router->forward(ids), k);
  };
  auto evaluate = [&](bool print) {
    run.evaluate(
        s.domains, o,
        [&](const torch::Tensor& ids) {
          return bm.loss(ids, route_of(ids.narrow(1, 0, o.seq_len)), false);
        },
        print);
  };
  auto save = [&]() -> Status {
    torch::serialize::OutputArchive a, am, ar;
    bm.save(am);
    router->save(ar);
    a.write("moe", am);
    a.write("router", ar);
    if (pool.phase >= 0 && pool.phase == phase_i) {
      a.write("round_pool_phase", torch::tensor(int64_t{pool.phase}));
      a.write("round_pool_ids", pool.ids);
      a.write("round_pool_score", pool.score);
    }
    return run.save(a, opt.get(), "finetune (bounded memory) training loss");
  };

  if (global == 0) evaluate(false);
  const double t0 = now_seconds();
  const int global0 = global;
  for (; phase_i < static_cast<int>(phases.size()); ++phase_i, phase_step = 0) {
    const FinetunePhase& p = phases[phase_i];
    if (!opt || phase_step == 0) make_opt(p);
    if (p.router && current && pool.phase != phase_i && phase_step < p.steps)
      pool = current_targets(bm, route_of, s.domains, o, p, phase_i);
    int64_t n_pool = 1;  // windows the router steps read (none when the phase is done)
    if (p.router && current && pool.ids.defined()) n_pool = pool.ids.size(0);
    if (p.router && !current) n_pool = targets->n_pool();
    PoolOrder order(n_pool, o.seed + 7919u * p.round);
    for (; phase_step < p.steps; ++phase_step) {
      if (!p.router && block_of(p, phase_step) != block) make_opt(p);  // the next slice's turn
      set_lr(*opt,
             cosine_lr(phase_step, p.steps, std::min(o.warmup, p.steps / 4 + 1), p.lr, p.lr * 0.1));
      double loss = 0;
      opt->zero_grad();
      if (p.router) {
        torch::Tensor ids, score;
        if (current) {
          std::vector<int64_t> rows;
          for (int b = 0; b < o.batch; ++b)
            rows.push_back(order.at(int64_t{phase_step} * o.batch + b));
          const auto idx = torch::tensor(rows, torch::kInt64);
          ids = pool.ids.index_select(0, idx);
          score = pool.score.index_select(0, idx);
        } else {
          TargetBatch t = target_batch(*targets, order.batch(*targets, phase_step, o.batch), false);
          ids = t.ids;
          score = t.score;
        }
        auto l = distill_loss(router->forward(ids), score, o.tau);
        l.backward();
        loss = l.item<double>();
      } else {
        // The windows (of 4x as many drawn) with the most tokens routed to the expert in turn.
        const uint64_t stream = 2 * static_cast<uint64_t>(p.round);
        auto cand =
            sample_batch(s.domains, o.seed + 7919 * stream, phase_step, 0, 4 * o.batch, o.seq_len);
        auto route = route_of(cand.narrow(1, 0, o.seq_len));
        auto mine = route.select(-1, bm.selected()).gt(0).sum(1);  // [4B]
        auto pick = std::get<1>(mine.topk(o.batch));
        loss = bm.loss(cand.index_select(0, pick), route.index_select(0, pick), true);
      }
      torch::nn::utils::clip_grad_norm_(p.router ? router->parameters() : bm.parameters(), 1.0);
      opt->step();
      ++global;
      log.rows.push_back({double(global), double(p.round), p.router ? 1.0 : 0.0, loss,
                          p.router ? NAN : double(bm.selected())});
      const double el = now_seconds() - t0;
      char extra[96];
      std::snprintf(extra, sizeof(extra), "round %d %s | loss %.4f", p.round,
                    p.router ? "router" : ("expert " + std::to_string(bm.selected())).c_str(),
                    loss);
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
  Model out = bm.view_model(shell);
  out.router = std::make_shared<Model>(model_from_torch(*router));
  out.router->config.rope_style = RopeStyle::kHalf;
  RME_RETURN_IF_ERROR(write_hf_model(out, nullptr, o.out_dir, type));
  if (is_directory(shell.source))
    RME_RETURN_IF_ERROR(copy_tokenizer_files(shell.source, o.out_dir).status());
  std::printf("wrote %s\n", o.out_dir.c_str());
  return Status::Ok();
}

}  // namespace rme
