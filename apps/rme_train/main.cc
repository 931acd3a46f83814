// apps/rme_train: `rme-train`, the libtorch half of rme (kept out of the `rme` binary because
// libtorch and libsentencepiece cannot share a process). `rme train|train-router|finetune ...`
// run it.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/file.h"
#include "kernels/cpu.h"
#include "train/moe_trainer.h"
#include "train/trainer.h"

namespace {

int report(const rme::Status& st) {
  if (st.ok()) return 0;
  std::fprintf(stderr, "rme: error: %s\n", st.message().c_str());
  return 1;
}

// torch reports misuse by throwing; turn it into an error message, not an abort.
template <typename F>
int guarded(F&& f) {
  try {
    return report(f());
  } catch (const std::exception& e) {
    return report(
        rme::Status(rme::StatusCode::kInvalidArgument, std::string("libtorch: ") + e.what()));
  }
}

// libtorch's products run in OpenBLAS, which picks its kernels from the CPU (Zen 4/5 and other
// AVX-512 CPUs with BF16: Cooperlake's) unless OPENBLAS_CORETYPE names one. A machine that pins an
// AVX2-era core there (some images set Haswell) runs every product of training with AVX2 kernels:
// measured 113 vs 190 GFLOP/s on Zen 5, a bounded fine-tuning step ~1.5x slower
// (docs/training.md). The user's setting stands; say what it costs.
void warn_weak_openblas_core() {
  const char* core = std::getenv("OPENBLAS_CORETYPE");
  if (core == nullptr || !rme::cpu_features().avx512) return;
  std::string c(core);
  for (char& ch : c) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const char* wide : {"skylakex", "cooperlake", "sapphirerapids"})
    if (c == wide) return;
  std::fprintf(stderr,
               "rme-train: warning: OPENBLAS_CORETYPE=%s from the environment makes OpenBLAS run "
               "narrower kernels than this AVX-512 CPU has (training's products ~1.7x slower); "
               "unset it to let OpenBLAS choose\n",
               core);
}

}  // namespace

int main(int argc, char** argv) {
  // libtorch allocates and frees tensors of tens of MB every step; with glibc's defaults each one
  // is a fresh mmap whose pages fault in again (measured: a third of the time in the kernel). The
  // tunables are read at start-up, so set them and re-exec once.
  if (std::getenv("GLIBC_TUNABLES") == nullptr) {
    setenv("GLIBC_TUNABLES",
           "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296", 1);
    execv("/proc/self/exe", argv);  // on failure, carry on with the defaults
  }
  warn_weak_openblas_core();
  rme::exit_cleanly_on_truncated_mappings();  // a model truncated under a run: exit 1
  CLI::App app{"rme-train: training with libtorch (usually run as `rme train ...`)"};
  app.require_subcommand(1);
  std::function<int()> run;

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
  train->callback([&] {
    run = [&] {
      return guarded([&]() -> rme::Status {
        auto cfg = rme::read_train_config(config);
        if (!cfg.ok()) return cfg.status();
        return rme::train_dense(*cfg, {corpus, out, dtype, kill_at});
      });
    };
  });

  auto* tr = app.add_subcommand(
      "train-router", "Distill the pre-gating router (and layer-wise gates) from the dense parent");
  rme::RouterTrainOptions ro;
  tr->add_option("moe", ro.moe_dir, "MoE directory from `rme moefy`")->required();
  tr->add_option("--corpus", ro.corpus_dir, "corpus directory from `rme corpus`")->required();
  tr->add_option("--out", ro.out_dir, "output MoE directory (may be the input)")->required();
  tr->add_option("--dense", ro.dense_path, "dense parent (default: the one moefy recorded)");
  tr->add_option("--steps", ro.steps, "optimizer steps")->check(CLI::Range(1, 1 << 24));
  tr->add_option("--batch", ro.batch, "sequences per step")->check(CLI::Range(1, 4096));
  tr->add_option("--seq-len", ro.seq_len, "tokens per sequence")->check(CLI::Range(2, 1 << 16));
  tr->add_option("--lr", ro.lr, "peak learning rate (warmup + cosine)");
  tr->add_option("--tau", ro.tau, "temperature of the target distribution over experts");
  tr->add_option("--router-dim", ro.router_dim, "router width (default: clamp(D/2, 64, 512))");
  tr->add_option("--router-layers", ro.router_layers, "router layers")->check(CLI::Range(1, 8));
  tr->add_option("--router-heads", ro.router_heads, "router heads")->check(CLI::Range(1, 64));
  tr->add_option("--eval-tokens", ro.eval_tokens, "held-out tokens per domain for accuracy");
  tr->add_option("--checkpoint-every", ro.checkpoint_every, "steps between checkpoints")
      ->check(CLI::Range(1, 1 << 24));
  tr->add_option("--threads", ro.threads, "BLAS threads (0 = all)");
  tr->add_option("--seed", ro.seed, "seed");
  tr->add_option("--export-type", ro.export_dtype, "f32, f16, bf16 (default: as the backbone)");
  tr->add_option("--targets", ro.targets_dir,
                 "router targets directory, made once by the engine and reused across runs "
                 "(default: OUT/train/targets)");
  tr->add_option("--target-tokens", ro.target_tokens,
                 "tokens of training windows in the targets (default: min(steps x batch x "
                 "seq-len, 262144))")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 40));
  tr->add_option("--target-seed", ro.target_seed, "seed of the targets' training windows");
  tr->add_option("--gate-inputs", ro.gate_inputs,
                 "store FFN inputs for the layer-wise gates: auto (when within --gate-budget-mb), "
                 "on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  tr->add_option("--gate-budget-mb", ro.gate_budget_mb, "disk for FFN inputs with auto")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  tr->callback([&] { run = [&] { return guarded([&] { return rme::train_router(ro); }); }; });

  auto* ft = app.add_subcommand(
      "finetune", "Tune an MoE's experts with the LM loss (router frozen); --rounds alternates");
  rme::FinetuneOptions fo;
  ft->add_option("moe", fo.moe_dir, "MoE directory with a router")->required();
  ft->add_option("--corpus", fo.corpus_dir, "corpus directory from `rme corpus`")->required();
  ft->add_option("--out", fo.out_dir, "output MoE directory")->required();
  ft->add_option("--routing", fo.routing, "router (Read-ME) or layer-gate (baseline)")
      ->check(CLI::IsMember({"router", "layer-gate"}));
  ft->add_option("--rounds", fo.rounds, "rounds (router tuning between expert tuning)")
      ->check(CLI::Range(1, 100));
  ft->add_option("--steps", fo.steps, "expert-tuning steps per round")
      ->check(CLI::Range(1, 1 << 24));
  ft->add_option("--router-steps", fo.router_steps, "router-tuning steps between rounds")
      ->check(CLI::Range(1, 1 << 24));
  ft->add_option("--batch", fo.batch, "sequences per step")->check(CLI::Range(1, 4096));
  ft->add_option("--seq-len", fo.seq_len, "tokens per sequence")->check(CLI::Range(2, 1 << 16));
  ft->add_option("--lr", fo.lr, "expert-tuning peak learning rate (x decay per round)");
  ft->add_option("--router-lr", fo.router_lr, "router-tuning peak learning rate");
  ft->add_option("--decay", fo.decay, "learning-rate factor per round");
  ft->add_option("--eval-tokens", fo.eval_tokens, "held-out tokens per domain");
  ft->add_option("--checkpoint-every", fo.checkpoint_every, "steps between checkpoints")
      ->check(CLI::Range(1, 1 << 24));
  ft->add_option("--threads", fo.threads, "BLAS threads (0 = all)");
  ft->add_option("--seed", fo.seed, "seed of the data order");
  ft->add_option("--top-k", fo.top_k, "experts per token while tuning (default: the model's)")
      ->check(CLI::Range(1, 1024));
  ft->add_option("--export-type", fo.export_dtype, "f32, f16, bf16 (default: as the backbone)");
  ft->add_option("--memory", fo.memory,
                 "full (every parameter f32 + AdamW), bounded (16-bit frozen, one expert at a "
                 "time, layer-wise recomputation), auto (full if it fits)")
      ->check(CLI::IsMember({"auto", "full", "bounded"}));
  ft->add_option("--layer-groups", fo.layer_groups,
                 "bounded: tune each expert in this many groups of layers (0 = as memory needs)")
      ->check(CLI::Range(0, 1024));
  ft->add_option("--round-targets", fo.round_targets,
                 "bounded: router rounds distill from the current experts (once a round) or the "
                 "dense parent's targets (--targets)")
      ->check(CLI::IsMember({"current", "dense"}));
  ft->add_option("--round-target-tokens", fo.round_target_tokens,
                 "bounded, current: tokens of targets made per round (0 = min(router steps x "
                 "batch x seq-len, 32768))")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  ft->add_option("--targets", fo.targets_dir,
                 "bounded, --round-targets dense: the dense parent's router targets (default: "
                 "MOE/train/targets)");
  ft->add_option("--kill-at-step", fo.kill_at_step, "testing")->group("");
  ft->callback([&] { run = [&] { return guarded([&] { return rme::finetune_moe(fo); }); }; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  return run ? run() : 2;
}
