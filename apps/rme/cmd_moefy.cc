// apps/rme: `rme moefy` — carve a Read-ME MoE (shared expert + one routed expert per domain or
// cluster) out of a dense model, or prune it structurally to the same active width.
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "core/thread_pool.h"
#include "moefy/carve.h"
#include "moefy/profile.h"

namespace rme::cli {

void add_moefy_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "moefy", "Refactor a dense model into a Read-ME MoE from `rme profile` statistics");
  auto a = std::make_shared<MoefyArgs>();
  a->model.add(*app);
  app->get_option("model")->required(false);
  app->add_option("--stats", a->stats, "statistics from `rme profile`");
  app->add_option("--random-backbone", a->random_backbone,
                  "instead: a timing model — a random backbone of this shape (tinyllama, "
                  "llama2-7b, rme-mini) driven by --router's trained router");
  app->add_option("--router", a->router, "the trained Read-ME MoE whose router to use");
  app->add_option("--active", a->active, "timing model: active FFN fraction per token")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--shared", a->shared, "timing model: shared expert fraction of the FFN")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--keep", a->keep, "fraction of FFN channels each domain keeps")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--cluster", a->cluster,
                  "K pseudo-domains by k-means over sequence profiles (no domain labels)")
      ->check(CLI::Range(0, 256));
  app->add_option("--top-k", a->top_k, "experts applied per token by default")
      ->check(CLI::Range(1, 64));
  app->add_option("--seed", a->seed, "k-means seed");
  app->add_flag("--prune", a->prune,
                "instead: the dense model pruned to the MoE's active width (global top channels)");
  app->add_option("--type", a->type,
                  std::string("stored type: ") + TypeChoice::names() +
                      " (default: the parent's; f32 for quantized parents)");
  app->add_option("-o,--out", a->out, "output: a directory (safetensors) or a .gguf file")
      ->required();
  app->callback([a, &run] { run = [a] { return run_moefy(*a); }; });
}

int run_moefy(const MoefyArgs& a) {
  if (!a.random_backbone.empty()) {
    if (a.router.empty() || a.out.empty())
      return fail(invalid_argument("--random-backbone needs --router FROM_MOE and --out"));
    if (a.out.size() < 5 || a.out.substr(a.out.size() - 5) != ".gguf")
      return fail(invalid_argument("--random-backbone writes a .gguf file"));
    if (a.model.threads > 0) ThreadPool::set_default_threads(a.model.threads);
    return write_timing_model(a.random_backbone, a.router, a.type.empty() ? "q8_0" : a.type,
                              a.active, a.shared, a.seed, a.out);
  }
  if (a.model.model.empty() || a.stats.empty())
    return fail(invalid_argument("moefy needs MODEL and --stats (or --random-backbone)"));
  auto loaded = load(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& dense = *loaded->model;
  auto stats = read_profile(a.stats);
  if (!stats.ok()) return fail(stats.status());
  if (stats->n_layer != dense.config.n_layer || stats->n_ff != dense.config.n_ff)
    return fail(invalid_argument(
        a.stats + ": statistics are for " + std::to_string(stats->n_layer) + " layers x " +
        std::to_string(stats->n_ff) + " channels, the model has " +
        std::to_string(dense.config.n_layer) + " x " + std::to_string(dense.config.n_ff)));
  ChannelScores scores = stats->scores();
  std::vector<std::string> names = stats->domains;
  if (a.cluster > 0) {
    auto assign = kmeans(stats->seq_profile, a.cluster, a.seed);
    if (!assign.ok()) return fail(assign.status());
    scores = stats->cluster_scores(*assign, a.cluster);
    names.clear();
    for (int k = 0; k < a.cluster; ++k) {
      // Name each cluster by its most frequent source domain, for readable reports.
      std::vector<int> count(stats->domains.size(), 0);
      int n = 0;
      for (size_t i = 0; i < assign->size(); ++i)
        if ((*assign)[i] == k) ++count[stats->seq_domain[i]], ++n;
      size_t top = std::max_element(count.begin(), count.end()) - count.begin();
      names.push_back("c" + std::to_string(k) + ":" + stats->domains[top]);
      std::printf("cluster %d: %d sequences, %d%% %s\n", k, n, n ? 100 * count[top] / n : 0,
                  stats->domains[top].c_str());
    }
  }
  auto layout = carve_experts(scores, a.keep);
  if (!layout.ok()) return fail(layout.status());
  if (a.prune) {  // same active width as the MoE: shared + one expert, global top channels
    std::vector<int> widths;
    for (int l = 0; l < dense.config.n_layer; ++l)
      widths.push_back(static_cast<int>(
          layout->shared[l].size() + (layout->experts.empty() ? 0 : layout->experts[0][l].size())));
    layout->shared = top_channels(stats->pooled(), widths);
    layout->experts.clear();
    names.clear();
  }
  const bool gguf = a.out.size() > 5 && a.out.substr(a.out.size() - 5) == ".gguf";
  // The output streams: each slice is cut from the parent when the writer reaches it, so the
  // carved MoE is never in memory whole (docs/training.md).
  auto moe = build_moe(dense, *layout, names, /*deferred=*/true);
  if (!moe.ok()) return fail(moe.status());
  moe->moe.top_k = a.prune ? 1 : std::min(a.top_k, std::max(1, moe->moe.n_expert));
  moe->moe.parent = a.model.model;
  const LlamaConfig& c = moe->config;
  std::printf("layer  shared  expert widths\n");
  int64_t shared = 0, routed = 0, one = 0;
  for (int l = 0; l < c.n_layer; ++l) {
    std::printf("%5d  %6d ", l, c.ffn_width(l));
    shared += c.ffn_width(l);
    for (int e = 0; e < moe->moe.n_expert; ++e) {
      std::printf(" %d", moe->moe.expert_width(e, l));
      routed += moe->moe.expert_width(e, l);
    }
    if (moe->moe.n_expert > 0) one += moe->moe.expert_width(0, l);
    std::printf("\n");
  }
  const int64_t ffn_dense = int64_t{c.n_ff} * c.n_layer * 3 * c.n_embd;
  const int64_t ffn_active = (shared + one) * 3 * c.n_embd;
  const int64_t ffn_total = (shared + routed) * 3 * c.n_embd;
  const int64_t rest = dense.config.n_params() - ffn_dense;
  std::printf(
      "parameters: dense %.2fM; %s active %.2fM, total %.2fM (FFN active %.0f%% of "
      "dense)\n",
      dense.config.n_params() / 1e6, a.prune ? "pruned" : "MoE", (rest + ffn_active) / 1e6,
      (rest + ffn_total) / 1e6, 100.0 * ffn_active / ffn_dense);
  // Default: the parent's matrix dtype (f32 for quantized parents, whose slices are f32).
  const DType parent = dense.weights.layers[0].w_gate.dtype;
  TypeChoice type = dtype_is_quantized(parent) ? DType::kF32 : parent;
  if (!a.type.empty()) {
    auto parsed = TypeChoice::parse(a.type);
    if (!parsed.ok()) return fail(invalid_argument("--type: " + parsed.status().message()));
    type = *parsed;
  }
  Status st = gguf ? write_gguf_model(*moe, loaded->tokenizer.get(), a.out, type)
                   : write_hf_model(*moe, loaded->tokenizer.get(), a.out, type.base);
  if (!st.ok()) return fail(st);
  std::printf("wrote %s\n", a.out.c_str());
  return 0;
}

}  // namespace rme::cli
