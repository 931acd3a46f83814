// train: the bookkeeping both fine-tuning paths share — checkpoint position, loss and validation
// logs, the checkpoint's common entries, CSVs and plots, and the per-domain validation pass.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/text_corpus.h"
#include "report/plot.h"
#include "train/moe_trainer.h"

namespace rme {

// Owned by the one training loop; not thread-safe. Fails (Status) only on I/O.
struct FinetuneRun {
  std::string tdir, ckpt, fingerprint;
  int phase_i = 0, phase_step = 0, global = 0;  // where the run is (the next step to take)
  Table log, val;

  // OUT/train made; log has `log_columns`; val a column per domain with a validation split, then
  // their mean.
  static Result<FinetuneRun> start(const FinetuneOptions& o, const std::vector<Domain>& domains,
                                   std::vector<std::string> log_columns, std::string fingerprint);
  // Position and logs from a checkpoint (what save() wrote besides the models).
  void read(torch::serialize::InputArchive& a);
  // Adds position, logs, fingerprint and the optimizer (when given) to `a`, which holds the
  // models, writes it atomically to ckpt, then the CSVs and plots.
  Status save(torch::serialize::OutputArchive& a, torch::optim::AdamW* opt,
              const std::string& loss_title);
  // A validation row at the current step: per domain, the mean of loss(ids [b, seq_len + 1]) over
  // the first eval_tokens tokens' windows. The end of the last phase was evaluated already: with
  // print, that row is replaced (not duplicated); without, nothing is done.
  // After a step: a checkpoint every checkpoint_every steps and at the end of a phase of
  // phase_steps steps (evaluated first; the checkpoint records the next position); SIGKILL at
  // o.kill_at_step (tests).
  Status end_step(const FinetuneOptions& o, int phase_steps, const std::function<void()>& evaluate,
                  const std::function<Status()>& save);
  void evaluate(const std::vector<Domain>& domains, const FinetuneOptions& o,
                const std::function<double(const torch::Tensor&)>& loss, bool print);
};

}  // namespace rme
