// train: `rme train-router` — distilling the pre-gating router and the layer-wise gates.
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/file.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "formats/model_io.h"
#include "moefy/router_init.h"
#include "moefy/router_targets.h"
#include "report/plot.h"
#include "train/export.h"
#include "train/moe_torch.h"
#include "train/moe_train_util.h"
#include "train/moe_trainer.h"
#include "train/train_util.h"

namespace rme {

namespace {

// The router targets of this run: the directory's if it holds them for these options, else made
// (or finished, after a kill) by the engine from the dense parent, then opened.
Result<std::unique_ptr<RouterTargets>> prepare_targets(const RouterTrainOptions& o,
                                                       const MoeSetup& s,
                                                       const std::string& dense_path) {
  const Model& moe = *s.moe;
  const std::string dir = o.targets_dir.empty() ? o.out_dir + "/train/targets" : o.targets_dir;
  RouterTargetSpec spec;
  spec.seq_len = o.seq_len;
  spec.pool_tokens = o.target_tokens > 0
                         ? o.target_tokens
                         : std::min<int64_t>(int64_t{o.steps} * o.batch * o.seq_len, 1 << 18);
  spec.eval_tokens = o.eval_tokens;
  spec.seed = o.target_seed;
  RME_ASSIGN_OR_RETURN(LoadedModel dl, load_model(dense_path));
  const Model& dense = *dl.model;
  if (dense.config.n_layer != moe.config.n_layer || dense.config.n_ff != moe.moe.parent_n_ff ||
      dense.moe.is_moe() || dense.config.n_vocab != moe.config.n_vocab)
    return invalid_argument(dense_path + ": not the dense parent of " + o.moe_dir);
  int n_valid = 0;
  for (const auto& d : s.domains) n_valid += d.has_valid ? 1 : 0;
  const uint64_t gate_bytes = gate_input_bytes(spec, int64_t{n_valid} * o.eval_tokens,
                                               dense.config.n_layer, dense.config.n_embd);
  if (o.gate_inputs == "on")
    spec.gate_inputs = true;
  else if (o.gate_inputs == "auto")
    spec.gate_inputs = gate_bytes <= static_cast<uint64_t>(o.gate_budget_mb) << 20;
  else if (o.gate_inputs != "off")
    return invalid_argument("--gate-inputs " + o.gate_inputs + ": expected auto, on or off");
  std::fprintf(stderr,
               "router targets: %lld training tokens (%lld windows of %d) + validation, %s\n",
               static_cast<long long>(spec.pool_windows() * spec.seq_len),
               static_cast<long long>(spec.pool_windows()), spec.seq_len,
               spec.gate_inputs ? "with FFN inputs for the layer-wise gates"
                                : "without FFN inputs (no layer-wise gates)");
  if (o.threads > 0) ThreadPool::set_default_threads(o.threads);
  RME_ASSIGN_OR_RETURN(KernelConfig kernels, KernelConfig::from_env());
  RME_RETURN_IF_ERROR(
      build_router_targets(dense, moe.moe, o.corpus_dir, spec, dir, ThreadPool::global(), kernels));
  return RouterTargets::open(dir);
}

}  // namespace

Status train_router(const RouterTrainOptions& o) {
  RME_ASSIGN_OR_RETURN(MoeSetup s, open_moe(o.moe_dir, o.corpus_dir, o.seq_len, o.threads));
  const Model& moe = *s.moe;
  const int E = moe.moe.n_expert, L = moe.config.n_layer, D = moe.config.n_embd;
  const std::string dense_path = o.dense_path.empty() ? moe.moe.parent : o.dense_path;
  if (dense_path.empty()) return invalid_argument("train-router needs --dense PARENT");
  RME_ASSIGN_OR_RETURN(std::unique_ptr<RouterTargets> targets, prepare_targets(o, s, dense_path));
  const RouterTargets& tg = *targets;
  const bool with_gates = tg.gate_dim() == D;
  if (!with_gates)
    std::fprintf(stderr,
                 "train-router: no FFN inputs in the targets, so no layer-wise gates are trained "
                 "(--gate-inputs on stores them)\n");

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
  if (with_gates) params.push_back(gates);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));

  const std::string tdir = o.out_dir + "/train";
  std::error_code ec;
  std::filesystem::create_directories(tdir, ec);
  if (ec) return io_error(tdir + ": " + ec.message());
  const std::string ckpt = tdir + "/router_checkpoint.pt";
  const std::string fingerprint =
      nlohmann::json{{"moe", o.moe_dir},     {"steps", o.steps},    {"batch", o.batch},
                     {"seq_len", o.seq_len}, {"lr", o.lr},          {"tau", o.tau},
                     {"seed", o.seed},       {"dim", shape.n_embd}, {"targets", tg.fingerprint()}}
          .dump();
  Table log{{"step", "loss", "train_acc"}, {}};
  Table val{{"step"}, {}};
  for (const std::string& d : tg.valid_domains()) val.columns.push_back(d);
  val.columns.push_back("mean");
  val.columns.push_back("layer_gate_mean");
  int start = 0;
  if (file_exists(ckpt)) {
    try {
      torch::serialize::InputArchive a;
      RME_RETURN_IF_ERROR(open_checkpoint(ckpt, fingerprint, a));
      router->load(a);
      torch::Tensor g, st, lg, vl;
      a.read("gates", g);
      a.read("step", st);
      if (a.try_read("log", lg) && a.try_read("val", vl)) {  // older checkpoints lack them
        log.rows = tensor_to_rows(lg);
        val.rows = tensor_to_rows(vl);
      }
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
    if (print)
      std::printf("%-10s %9s %9s %12s %12s\n", "domain", "tokens", "router", "layer-gate",
                  "top-oracle");
    for (size_t d = 0; d < tg.valid_domains().size(); ++d) {
      int64_t hit = 0, ghit = 0, tok = 0;
      torch::Tensor counts = torch::zeros({E}, torch::kInt64);
      for (int64_t b = 0; b < tg.n_valid(d); b += o.batch) {
        std::vector<TargetRows> rows;
        for (int64_t w = b; w < std::min<int64_t>(tg.n_valid(d), b + o.batch); ++w)
          rows.push_back(tg.valid(d, w));
        const TargetBatch t = target_batch(tg, rows, with_gates);
        auto label = t.score.argmax(-1);
        hit += (router->forward(t.ids).argmax(-1) == label).sum().item<int64_t>();
        for (int l = 0; l < L && with_gates; ++l)
          ghit += (torch::matmul(t.h2[l], gates[l].t()).argmax(-1) == t.labels[l])
                      .sum()
                      .item<int64_t>();
        counts += torch::bincount(label.reshape(-1), {}, E);
        tok += label.numel();
      }
      const double acc = double(hit) / tok, gacc = with_gates ? double(ghit) / (tok * L) : NAN;
      row.push_back(acc);
      sum += acc;
      gsum += gacc;
      ++n;
      if (print)
        std::printf("%-10s %9lld %9s %12s %12s\n", tg.valid_domains()[d].c_str(),
                    static_cast<long long>(tok), pct(acc).c_str(), pct(gacc).c_str(),
                    pct(counts.max().item<int64_t>() / double(tok)).c_str());
    }
    row.push_back(n ? sum / n : NAN);
    row.push_back(n ? gsum / n : NAN);
    if (print)
      std::printf(
          "%-10s %9s %9s %12s   (router: top-1 vs oracle expert; layer-gate: per-layer "
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
    a.write("log", rows_to_tensor(log.rows, log.columns.size()));
    a.write("val", rows_to_tensor(val.rows, val.columns.size()));
    a.write("fingerprint", c10::IValue(fingerprint));
    torch::serialize::OutputArchive oa;
    opt.save(oa);
    a.write("optimizer", oa);
    RME_RETURN_IF_ERROR(save_archive_atomic(a, ckpt));
    RME_RETURN_IF_ERROR(write_csv(tdir + "/router_log.csv", log));
    RME_RETURN_IF_ERROR(write_csv(tdir + "/router_val.csv", val));
    std::vector<int> cols;
    for (size_t i = 1; i < val.columns.size(); ++i) cols.push_back(static_cast<int>(i));
    (void)plot_png(
        tdir + "/router_val.csv", val,
        {"router accuracy vs oracle expert (held-out)", "step", "accuracy", 0, cols, false, false},
        tdir + "/router_accuracy.png");
    (void)plot_png(tdir + "/router_log.csv", log,
                   {"router distillation loss", "step", "KL + gate CE", 0, {1}, false, false},
                   tdir + "/router_loss.png");
    return Status::Ok();
  };

  PoolOrder order(tg.n_pool(), o.seed);
  const double t0 = now_seconds();
  router->train();
  for (int step = start; step < o.steps; ++step) {
    set_lr(opt, cosine_lr(step, o.steps, o.warmup, o.lr, o.min_lr));
    const TargetBatch t = target_batch(tg, order.batch(tg, step, o.batch), with_gates);
    auto logits = router->forward(t.ids);
    auto loss = distill_loss(logits, t.score, o.tau);
    for (int l = 0; l < L && with_gates; ++l)
      loss = loss +
             torch::nn::functional::cross_entropy(
                 torch::matmul(t.h2[l], gates[l].t()).reshape({-1, E}), t.labels[l].reshape({-1})) /
                 L;
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
                  double(step + 1 - start) * o.batch * o.seq_len / el, "tok/s", el, start);
    if ((step + 1) % o.checkpoint_every == 0 || step + 1 == o.steps) {
      std::fprintf(stderr, "\n");
      evaluate(step + 1, false);
      RME_RETURN_IF_ERROR(save(step + 1));
    }
  }
  std::fprintf(stderr, "\n");
  // The last checkpoint evaluated this step already: print it again, do not add a second row.
  if (!val.rows.empty() && val.rows.back()[0] == o.steps) val.rows.pop_back();
  evaluate(o.steps, true);
  RME_RETURN_IF_ERROR(save(o.steps));
  RME_ASSIGN_OR_RETURN(DType type, out_dtype(o.export_dtype, moe));
  RME_RETURN_IF_ERROR(write_moe(moe, nullptr, nullptr, &router,
                                with_gates ? gates.detach() : torch::Tensor(), o.out_dir, type));
  std::printf("wrote %s (router: %d layer, %d heads, width %d, %.2fM parameters)\n",
              o.out_dir.c_str(), rc.n_layer, rc.n_head, rc.n_embd, rc.n_params() / 1e6);
  return Status::Ok();
}

}  // namespace rme
