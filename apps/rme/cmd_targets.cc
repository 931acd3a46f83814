// apps/rme: `rme targets` — the pre-gating router's distillation targets, computed once by the
// engine's batched forward over the dense parent and written as shards that `rme train-router
// --targets DIR` reads for every step, round and seed.
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "core/thread_pool.h"
#include "moefy/router_targets.h"

namespace rme::cli {

void add_targets_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "targets", "Compute the router's distillation targets from the dense parent (engine pass)");
  auto a = std::make_shared<TargetsArgs>();
  a->model.add(*app);
  app->add_option("--dense", a->dense, "dense parent (default: the one moefy recorded)");
  app->add_option("--corpus", a->corpus, "corpus directory from `rme corpus`")->required();
  app->add_option("-o,--out", a->out, "targets directory (resumed when it exists)")->required();
  app->add_option("--seq-len", a->seq_len, "tokens per window (train-router's --seq-len)")
      ->check(CLI::Range(2, 1 << 16));
  app->add_option("--tokens", a->tokens, "tokens of training windows")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 40));
  app->add_option("--eval-tokens", a->eval_tokens, "held-out tokens per domain")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app->add_option("--seed", a->seed, "seed of the training windows");
  app->add_flag("--gate-inputs", a->gate_inputs,
                "also store every layer's FFN input (f16), for the layer-wise gates baseline");
  app->callback([a, &run] { run = [a] { return run_targets(*a); }; });
}

int run_targets(const TargetsArgs& a) {
  auto moe = load(a.model);
  if (!moe.ok()) return fail(moe.status());
  const Model& m = *moe->model;
  if (!m.moe.is_moe()) return fail(invalid_argument(a.model.model + ": not an MoE (rme moefy)"));
  const std::string dense_path = a.dense.empty() ? m.moe.parent : a.dense;
  if (dense_path.empty()) return fail(invalid_argument("targets: --dense PARENT is needed"));
  auto dense = load_model(dense_path);
  if (!dense.ok()) return fail(dense.status());
  auto kernels = a.model.kernels();
  if (!kernels.ok()) return fail(kernels.status());
  RouterTargetSpec spec;
  spec.seq_len = a.seq_len;
  spec.pool_tokens = a.tokens;
  spec.eval_tokens = a.eval_tokens;
  spec.seed = a.seed;
  spec.gate_inputs = a.gate_inputs;
  Status st = build_router_targets(*dense->model, m.moe, a.corpus, spec, a.out,
                                   ThreadPool::global(), *kernels);
  if (!st.ok()) return fail(st);
  auto t = RouterTargets::open(a.out);
  if (!t.ok()) return fail(t.status());
  std::printf("wrote %s: %lld training windows of %d tokens, %zu validation domains%s\n",
              a.out.c_str(), static_cast<long long>((*t)->n_pool()), (*t)->seq_len(),
              (*t)->valid_domains().size(), (*t)->gate_dim() ? ", with FFN inputs" : "");
  return 0;
}

}  // namespace rme::cli
