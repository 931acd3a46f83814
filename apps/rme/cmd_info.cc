// apps/rme: `rme info MODEL` — architecture, shapes, dtypes, parameter count, tokenizer.
#include <algorithm>
#include <cstdio>
#include <map>

#include "commands.h"
#include "common.h"
#include "formats/tensor_names.h"

namespace rme::cli {

void add_info_command(CLI::App& root, std::function<int()>& run) {
  auto* app =
      root.add_subcommand("info", "Show a model's architecture, shapes, dtypes and tokenizer");
  auto a = std::make_shared<InfoArgs>();
  a->model.add(*app);
  app->add_flag("--check", a->check,
                "check the file whole: every weight scanned for NaN/Inf (as --check-weights); "
                "exit 1 naming the first bad tensor");
  app->callback([a, &run] { run = [a] { return run_info(*a); }; });
}

int run_info(const InfoArgs& a) {
  ModelArgs margs = a.model;
  margs.check_weights = margs.check_weights || a.check;
  auto loaded = load(margs);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& m = *loaded->model;
  const LlamaConfig& c = m.config;
  std::printf(
      "model:        %s (%s)%s\n", m.source.c_str(), m.format.c_str(),
      m.random_weights ? " -- RANDOM WEIGHTS: for benchmarks, outputs are meaningless" : "");
  std::printf("architecture: %s\n", c.summary().c_str());
  int64_t total = 0;  // every stored weight (MoE: all experts and the router)
  m.for_each_weight([&](const WeightId&, const MatView& v) { total += v.n_out * v.n_in; });
  std::printf("parameters:   %lld (%.2f M)\n", static_cast<long long>(total), total / 1e6);
  std::printf("weights:      %.2f MiB\n", m.weight_bytes() / 1048576.0);
  if (m.moe.is_moe() || !c.n_ff_layer.empty()) {
    const MoeConfig& moe = m.moe;
    std::printf("moe:          %d experts, top-%d, parent FFN %d, parent %s\n", moe.n_expert,
                moe.top_k, moe.parent_n_ff, moe.parent.c_str());
    for (int l = 0; l < c.n_layer; ++l) {
      std::printf("  layer %-3d shared %-5d experts", l, c.ffn_width(l));
      for (int e = 0; e < moe.n_expert; ++e) std::printf(" %d", moe.expert_width(e, l));
      std::printf("\n");
    }
    for (int e = 0; e < moe.n_expert && e < static_cast<int>(moe.expert_names.size()); ++e)
      std::printf("  expert %d = %s\n", e, moe.expert_names[e].c_str());
    if (m.router)
      std::printf("router:       %s (%.2f M parameters)\n", m.router->config.summary().c_str(),
                  m.router->config.n_params() / 1e6);
    else if (moe.is_moe())
      std::printf("router:       none yet (rme train-router)\n");
    std::printf(
        "per token:    %.2f MB of weights read per decoded token (dense parts, router "
        "and top-%d experts)\n",
        m.decode_weight_bytes() / 1e6, moe.top_k);
    // What the other routing width would cost (`--route-top-k`), so the choice is priced.
    for (int k = 1; k <= std::min(2, moe.n_expert); ++k)
      if (k != moe.top_k)
        std::printf("  at top-%d:  %.2f MB per decoded token\n", k, m.decode_weight_bytes(k) / 1e6);
  }
  std::map<std::string, int> dtypes;
  m.for_each_weight(
      [&](const WeightId&, const MatView& v) { dtypes[std::string(dtype_name(v.dtype))]++; });
  std::printf("dtypes:      ");
  for (auto& [d, n] : dtypes) std::printf(" %s x%d", d.c_str(), n);
  std::printf("\n");
  std::printf("tensors:\n");
  m.for_each_weight([&](const WeightId& id, const MatView& v) {
    if (id.layer > 0) return;  // layer 0 stands for all layers
    std::string shape = is_vector(id)
                            ? "[" + std::to_string(v.n_in) + "]"
                            : "[" + std::to_string(v.n_out) + ", " + std::to_string(v.n_in) + "]";
    std::printf("  %-34s %-14s %s\n", tensor_name(id, NameScheme::kGguf).c_str(), shape.c_str(),
                std::string(dtype_name(v.dtype)).c_str());
  });
  if (c.n_layer > 1)
    std::printf("  (blk.1 .. blk.%d have the same shapes as blk.0)\n", c.n_layer - 1);
  if (const Tokenizer* t = loaded->tokenizer.get()) {
    const SpecialTokens& s = t->special();
    std::printf("tokenizer:    %s, %d tokens, bos=%d eos=%d unk=%d add_bos=%s\n", t->kind().c_str(),
                t->n_vocab(), s.bos, s.eos, s.unk, s.add_bos ? "yes" : "no");
  } else {
    std::printf("tokenizer:    none\n");
  }
  return 0;
}

}  // namespace rme::cli
