// train: FinetuneRun.
#include "train/finetune_run.h"

#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "train/train_util.h"

namespace rme {

Result<FinetuneRun> FinetuneRun::start(const FinetuneOptions& o, const std::vector<Domain>& domains,
                                       std::vector<std::string> log_columns,
                                       std::string fingerprint) {
  FinetuneRun r;
  r.tdir = o.out_dir + "/train";
  std::error_code ec;
  std::filesystem::create_directories(r.tdir, ec);
  if (ec) return io_error(r.tdir + ": " + ec.message());
  r.ckpt = r.tdir + "/finetune_checkpoint.pt";
  r.fingerprint = std::move(fingerprint);
  r.log = {std::move(log_columns), {}};
  r.val = {{"step"}, {}};
  for (const auto& d : domains)
    if (d.has_valid) r.val.columns.push_back(d.name);
  r.val.columns.push_back("mean");
  return r;
}

void FinetuneRun::read(torch::serialize::InputArchive& a) {
  torch::Tensor pos, lg, vl;
  a.read("position", pos);
  phase_i = static_cast<int>(pos[0].item<int64_t>());
  phase_step = static_cast<int>(pos[1].item<int64_t>());
  global = static_cast<int>(pos[2].item<int64_t>());
  a.read("log", lg);
  a.read("val", vl);
  log.rows = tensor_to_rows(lg);
  val.rows = tensor_to_rows(vl);
}

Status FinetuneRun::save(torch::serialize::OutputArchive& a, torch::optim::AdamW* opt,
                         const std::string& loss_title) {
  if (opt) {
    torch::serialize::OutputArchive ao;
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
                 {"MoE validation loss per domain (router routing)", "step", "nats/token", 0, cols,
                  false, false},
                 tdir + "/finetune_val.png");
  (void)plot_png(tdir + "/finetune_log.csv", log,
                 {loss_title, "step", "loss", 0, {3}, false, false}, tdir + "/finetune_loss.png");
  return Status::Ok();
}

Status FinetuneRun::end_step(const FinetuneOptions& o, int phase_steps,
                             const std::function<void()>& evaluate,
                             const std::function<Status()>& save) {
  const bool end_phase = phase_step + 1 == phase_steps;
  if (global % o.checkpoint_every == 0 || end_phase) {
    // The checkpoint records the next position: a run resumed from the middle of a phase used to
    // take its last step again (the tests killed runs only at phase ends, where this was right).
    ++phase_step;
    if (end_phase) {
      std::fprintf(stderr, "\n");
      evaluate();
    }
    const Status saved = save();
    --phase_step;
    RME_RETURN_IF_ERROR(saved);
  }
  if (global == o.kill_at_step) std::raise(SIGKILL);
  return Status::Ok();
}

void FinetuneRun::evaluate(const std::vector<Domain>& domains, const FinetuneOptions& o,
                           const std::function<double(const torch::Tensor&)>& loss, bool print) {
  torch::NoGradGuard ng;
  const bool again = !val.rows.empty() && val.rows.back()[0] == double(global);
  if (again && !print) return;
  if (again) val.rows.pop_back();
  std::vector<double> row = {double(global)};
  double sum = 0;
  int n = 0;
  for (const auto& d : domains) {
    if (!d.has_valid) continue;
    auto all = valid_windows(d.valid, o.seq_len, o.eval_tokens);
    double l = 0;
    for (int64_t b = 0; b < all.size(0); b += o.batch) {
      auto ids = all.narrow(0, b, std::min<int64_t>(o.batch, all.size(0) - b));
      l += loss(ids) * ids.size(0);
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
}

}  // namespace rme
