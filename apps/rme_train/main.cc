// apps/rme_train: `rme-train`, the libtorch half of rme (kept out of the `rme` binary because
// libtorch and libsentencepiece cannot share a process). `rme train ...` runs it.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "train/trainer.h"

int main(int argc, char** argv) {
  // libtorch allocates and frees tensors of tens of MB every step; with glibc's defaults each one
  // is a fresh mmap whose pages fault in again (measured: a third of the time in the kernel). The
  // tunables are read at start-up, so set them and re-exec once.
  if (std::getenv("GLIBC_TUNABLES") == nullptr) {
    setenv("GLIBC_TUNABLES",
           "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296", 1);
    execv("/proc/self/exe", argv);  // on failure, carry on with the defaults
  }
  CLI::App app{"rme-train: training with libtorch (usually run as `rme train`)"};
  app.require_subcommand(1);
  auto* train =
      app.add_subcommand("train", "Train a dense Llama model on an rme corpus (resumable)");
  std::string config, corpus, out, dtype = "bf16";
  int kill_at = -1;
  train->add_option("--config", config, "training config JSON")->required();
  train->add_option("--corpus", corpus, "corpus directory from `rme corpus`")->required();
  train->add_option("--out", out, "output directory (checkpoint, logs, plots, model/)")->required();
  train->add_option("--export-type", dtype, "dtype of the exported model: f32, f16, bf16")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  train->add_option("--kill-at-step", kill_at, "testing: SIGKILL this process after that step")
      ->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  auto cfg = rme::read_train_config(config);
  if (!cfg.ok()) {
    std::fprintf(stderr, "rme: error: %s\n", cfg.status().message().c_str());
    return 1;
  }
  rme::Status st;
  try {  // torch reports misuse by throwing; turn it into an error message, not an abort
    st = rme::train_dense(*cfg, {corpus, out, dtype, kill_at});
  } catch (const std::exception& e) {
    st = rme::Status(rme::StatusCode::kInvalidArgument, std::string("libtorch: ") + e.what());
  }
  if (!st.ok()) {
    std::fprintf(stderr, "rme: error: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
