// apps/rme: shared CLI helpers.
#include "common.h"

#include <unistd.h>

#include <cstdio>

#include "core/thread_pool.h"
#include "core/timer.h"

namespace rme::cli {

void ModelArgs::add(CLI::App& app) {
  app.add_option("model", model, "GGUF file, Hugging Face directory, or llama2.c .bin")->required();
  app.add_option("--tokenizer", tokenizer, "llama2.c tokenizer.bin (for .bin checkpoints)");
  app.add_option("-t,--threads", threads, "worker threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
}

Result<LoadedModel> load(const ModelArgs& args) {
  if (args.threads > 0) ThreadPool::set_default_threads(args.threads);
  LoadOptions o;
  o.tokenizer_path = args.tokenizer;
  return load_model(args.model, o);
}

int fail(const Status& st) {
  std::fprintf(stderr, "rme: error: %s\n", st.message().c_str());
  return 1;
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      start_(now_seconds()),
      tty_(isatty(STDERR_FILENO)) {}

void Progress::update(int64_t done) {
  double now = now_seconds();
  if (now - last_draw_ < 0.1 && done < total_) return;
  if (!tty_ && now - last_draw_ < 5 && done < total_) return;  // logs: a line every 5 s
  last_draw_ = now;
  last_done_ = done;
  double el = now - start_;
  double rate = el > 0 ? done / el : 0;
  double eta = rate > 0 ? (total_ - done) / rate : 0;
  const int width = 30;
  int fill = total_ > 0 ? static_cast<int>(width * done / total_) : width;
  std::string bar(fill, '#');
  bar.append(width - fill, '.');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %s  %.1f %s/s  ETA %.0fs%s", tty_ ? "\r" : "",
               label_.c_str(), bar.c_str(), static_cast<long long>(done),
               static_cast<long long>(total_), unit_.c_str(), rate, unit_.c_str(), eta,
               tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void Progress::finish() {
  if (last_done_ != total_) {
    last_draw_ = 0;  // force the final frame
    update(total_);
  }
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace rme::cli
