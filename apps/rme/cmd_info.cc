// apps/rme: `rme info MODEL` — architecture, shapes, dtypes, parameter count, tokenizer.
#include <cstdio>
#include <map>

#include "commands.h"
#include "common.h"
#include "formats/tensor_names.h"

namespace rme::cli {

void add_info_command(CLI::App& root, std::function<int()>& run) {
  auto* app =
      root.add_subcommand("info", "Show a model's architecture, shapes, dtypes and tokenizer");
  auto args = std::make_shared<ModelArgs>();
  args->add(*app);
  app->callback([args, &run] {
    run = [args]() -> int {
      auto loaded = load(*args);
      if (!loaded.ok()) return fail(loaded.status());
      const Model& m = *loaded->model;
      const LlamaConfig& c = m.config;
      std::printf("model:        %s (%s)%s\n", m.source.c_str(), m.format.c_str(),
                  m.random_weights ? " -- RANDOM WEIGHTS: for benchmarks, outputs are meaningless"
                                   : "");
      std::printf("architecture: %s\n", c.summary().c_str());
      std::printf("parameters:   %lld (%.2f M)\n", static_cast<long long>(c.n_params()),
                  c.n_params() / 1e6);
      std::printf("weights:      %.2f MiB\n", m.weight_bytes() / 1048576.0);
      std::map<std::string, int> dtypes;
      m.for_each_weight(
          [&](const WeightId&, const MatView& v) { dtypes[std::string(dtype_name(v.dtype))]++; });
      std::printf("dtypes:      ");
      for (auto& [d, n] : dtypes) std::printf(" %s x%d", d.c_str(), n);
      std::printf("\n");
      std::printf("tensors:\n");
      m.for_each_weight([&](const WeightId& id, const MatView& v) {
        if (id.layer > 0) return;  // layer 0 stands for all layers
        std::string shape =
            is_norm(id) ? "[" + std::to_string(v.n_in) + "]"
                        : "[" + std::to_string(v.n_out) + ", " + std::to_string(v.n_in) + "]";
        std::printf("  %-34s %-14s %s\n", tensor_name(id, NameScheme::kGguf).c_str(), shape.c_str(),
                    std::string(dtype_name(v.dtype)).c_str());
      });
      if (c.n_layer > 1)
        std::printf("  (blk.1 .. blk.%d have the same shapes as blk.0)\n", c.n_layer - 1);
      if (const Tokenizer* t = loaded->tokenizer.get()) {
        const SpecialTokens& s = t->special();
        std::printf("tokenizer:    %s, %d tokens, bos=%d eos=%d unk=%d add_bos=%s\n",
                    t->kind().c_str(), t->n_vocab(), s.bos, s.eos, s.unk, s.add_bos ? "yes" : "no");
      } else {
        std::printf("tokenizer:    none\n");
      }
      return 0;
    };
  });
}

}  // namespace rme::cli
