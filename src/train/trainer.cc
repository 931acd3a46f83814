// train: the training loop.
#include "train/trainer.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/file.h"
#include "core/timer.h"
#include "formats/text_corpus.h"
#include "report/plot.h"
#include "train/export.h"
#include "train/torch_llama.h"
#include "train/train_util.h"

namespace rme {
namespace {

torch::Tensor lm_loss(LlamaTorch& model, const torch::Tensor& ids) {
  const int64_t T = ids.size(1) - 1;
  auto logits = model->forward(ids.narrow(1, 0, T));
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                              ids.narrow(1, 1, T).reshape({-1}));
}

// Mean loss (nats/token) over the first eval_tokens of a validation shard, in fixed windows.
double evaluate(LlamaTorch& model, const TokenShard& s, const TrainConfig& c) {
  torch::NoGradGuard ng;
  auto all = valid_windows(s, c.seq_len, c.eval_tokens);
  double sum = 0;
  for (int64_t w0 = 0; w0 < all.size(0); w0 += c.batch_size) {
    auto ids = all.narrow(0, w0, std::min<int64_t>(c.batch_size, all.size(0) - w0));
    sum += lm_loss(model, ids).item<double>() * ids.size(0);
  }
  return sum / all.size(0);
}

struct History {
  std::vector<std::vector<double>> train;  // step, tokens, lr, loss
  std::vector<std::vector<double>> val;    // step, tokens, loss per domain..., mean
};

Status save_checkpoint(const std::string& path, LlamaTorch& model, torch::optim::AdamW& opt,
                       int step, const History& h, const TrainConfig& c, size_t n_val_cols) {
  torch::serialize::OutputArchive a;
  model->save(a);
  torch::serialize::OutputArchive oa;
  opt.save(oa);
  a.write("optimizer", oa);
  a.write("step", torch::tensor(static_cast<int64_t>(step)));
  a.write("history_train", rows_to_tensor(h.train, 4));
  a.write("history_val", rows_to_tensor(h.val, n_val_cols));
  a.write("config", c10::IValue(c.source_json));
  return save_archive_atomic(a, path);
}

Result<int> load_checkpoint(const std::string& path, LlamaTorch& model, torch::optim::AdamW& opt,
                            History& h, const TrainConfig& c) {
  try {
    torch::serialize::InputArchive a;
    RME_RETURN_IF_ERROR(load_archive(a, path));
    c10::IValue cfg;
    a.read("config", cfg);
    if (!cfg.isString() || cfg.toStringRef() != c.source_json)
      return invalid_argument(path + ": made with a different config; use a new --out directory");
    model->load(a);
    torch::serialize::InputArchive oa;
    a.read("optimizer", oa);
    opt.load(oa);
    torch::Tensor step, ht, hv;
    a.read("step", step);
    a.read("history_train", ht);
    a.read("history_val", hv);
    h.train = tensor_to_rows(ht);
    h.val = tensor_to_rows(hv);
    return static_cast<int>(step.item<int64_t>());
  } catch (const std::exception& e) {
    return corrupt(path + ": cannot read checkpoint: " + e.what());
  }
}

}  // namespace

Status train_dense(const TrainConfig& config, const TrainOptions& opt_in) {
  TrainConfig c = config;
  RME_ASSIGN_OR_RETURN(std::vector<Domain> domains,
                       open_domains(opt_in.corpus_dir, c.seq_len, c.mixture, c.model.n_vocab));
  RME_RETURN_IF_ERROR(c.model.validate().with_context("train config model"));
  configure_threads(c.threads);
  std::error_code ec;
  std::filesystem::create_directories(opt_in.out_dir, ec);
  if (ec) return io_error(opt_in.out_dir + ": " + ec.message());
  LlamaTorch model(c.model);
  model->init_weights(c.seed);
  using torch::optim::AdamWOptions;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(
      model->decay_params(),
      std::make_unique<AdamWOptions>(
          AdamWOptions(c.lr).betas({c.beta1, c.beta2}).eps(c.eps).weight_decay(c.weight_decay)));
  groups.emplace_back(model->no_decay_params(),
                      std::make_unique<AdamWOptions>(
                          AdamWOptions(c.lr).betas({c.beta1, c.beta2}).eps(c.eps).weight_decay(0)));
  torch::optim::AdamW opt(std::move(groups), AdamWOptions(c.lr));

  Table val_table;
  val_table.columns = {"step", "tokens"};
  for (const auto& d : domains)
    if (d.has_valid) val_table.columns.push_back(d.name);
  val_table.columns.push_back("mean");
  History hist;
  const std::string ckpt = opt_in.out_dir + "/checkpoint.pt";
  int start = 0;
  if (file_exists(ckpt)) {
    RME_ASSIGN_OR_RETURN(start, load_checkpoint(ckpt, model, opt, hist, c));
    std::fprintf(stderr, "resuming %s at step %d of %d\n", ckpt.c_str(), start, c.steps);
  }
  RME_RETURN_IF_ERROR(
      write_file_atomic(opt_in.out_dir + "/train_config.json", c.source_json + "\n"));

  auto write_logs = [&]() -> Status {
    Table t{{"step", "tokens", "lr", "loss"}, hist.train};
    RME_RETURN_IF_ERROR(write_csv(opt_in.out_dir + "/train_log.csv", t));
    val_table.rows = hist.val;
    RME_RETURN_IF_ERROR(write_csv(opt_in.out_dir + "/val_log.csv", val_table));
    std::vector<int> vcols;
    for (size_t i = 2; i < val_table.columns.size(); ++i) vcols.push_back(static_cast<int>(i));
    // Plots are a convenience; a missing gnuplot must not stop training.
    (void)plot_png(opt_in.out_dir + "/train_log.csv", t,
                   {"training loss", "tokens seen", "loss (nats/token)", 1, {3}, true, false},
                   opt_in.out_dir + "/train_loss.png");
    (void)plot_png(
        opt_in.out_dir + "/val_log.csv", val_table,
        {"validation loss per domain", "tokens seen", "loss (nats/token)", 1, vcols, true, false},
        opt_in.out_dir + "/val_loss.png");
    return Status::Ok();
  };
  auto run_eval = [&](int step) {
    model->eval();
    std::vector<double> row = {double(step), double(int64_t{step} * c.tokens_per_step())};
    double mean = 0;
    int n = 0;
    std::string line = "eval @" + std::to_string(step) + ":";
    for (auto& d : domains) {
      if (!d.has_valid) continue;
      double l = evaluate(model, d.valid, c);
      row.push_back(l);
      mean += l;
      ++n;
      char buf[96];
      std::snprintf(buf, sizeof(buf), " %s %.3f (%.3f bpb)", d.name.c_str(), l,
                    l / std::log(2.0) / d.bytes_per_token);
      line += buf;
    }
    row.push_back(n ? mean / n : NAN);
    hist.val.push_back(row);
    model->train();
    std::fprintf(stderr, "\n%s\n", line.c_str());
  };

  const double t0 = now_seconds();
  int64_t tokens_run = 0;
  model->train();
  for (int step = start; step < c.steps; ++step) {
    const double lr = c.lr_at(step);
    for (auto& g : opt.param_groups()) static_cast<AdamWOptions&>(g.options()).lr(lr);
    opt.zero_grad();
    double loss_sum = 0;
    for (int m = 0; m < c.grad_accum; ++m) {
      auto loss = lm_loss(model, sample_batch(domains, c.seed, step, m, c.batch_size, c.seq_len)) /
                  c.grad_accum;
      loss.backward();
      loss_sum += loss.item<double>();
    }
    if (!std::isfinite(loss_sum))
      return invalid_argument("loss became " + std::to_string(loss_sum) + " at step " +
                              std::to_string(step));
    torch::nn::utils::clip_grad_norm_(model->parameters(), c.grad_clip);
    opt.step();
    tokens_run += c.tokens_per_step();
    const int done = step + 1;
    hist.train.push_back({double(done), double(int64_t{done} * c.tokens_per_step()), lr, loss_sum});
    const double el = now_seconds() - t0;
    const double tps = tokens_run / el;
    char extra[64];
    std::snprintf(extra, sizeof(extra), "loss %.4f | lr %.2e", loss_sum, lr);
    progress_line("train", done, c.steps, extra, tps, "tok/s", el, start);
    if (done % c.eval_every == 0 || done == c.steps) run_eval(done);
    if (done % c.checkpoint_every == 0 || done == c.steps) {
      RME_RETURN_IF_ERROR(
          save_checkpoint(ckpt, model, opt, done, hist, c, val_table.columns.size()));
      RME_RETURN_IF_ERROR(write_logs());
    }
    if (done == opt_in.kill_at_step) std::raise(SIGKILL);
  }
  std::fprintf(stderr, "\n");
  RME_RETURN_IF_ERROR(write_logs());
  DType t = dtype_from_name(opt_in.export_dtype).value_or(DType::kBF16);
  RME_RETURN_IF_ERROR(export_hf(*model, opt_in.out_dir + "/model", t, opt_in.corpus_dir));
  std::fprintf(stderr, "exported %s/model (%s)\n", opt_in.out_dir.c_str(),
               opt_in.export_dtype.c_str());
  return Status::Ok();
}

}  // namespace rme
