// apps/rme: `rme bench` — prompt processing and generation speed (median of repetitions), bytes
// read per generated token, the effective bandwidth, and the machine's own streaming read
// bandwidth measured in the same run, so the output says how close decode is to the limit.
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "commands.h"
#include "common.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/membw.h"

namespace rme::cli {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Token ids that are valid for any vocabulary and not all the same.
std::vector<int> ids_for(int n, int n_vocab) {
  std::vector<int> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = static_cast<int>((1 + 7919ull * i) % n_vocab);
  return ids;
}

}  // namespace

void add_bench_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "bench", "Prompt-processing and generation speed vs the machine's memory bandwidth");
  auto a = std::make_shared<BenchArgs>();
  a->model.add(*app);
  a->routing.add(*app);
  app->add_option("--pp", a->pp, "prompt lengths to time (default 128 512)");
  app->add_option("--tg", a->tg, "tokens to generate (default 128)")->check(CLI::Range(1, 1 << 16));
  app->add_option("-r,--reps", a->reps, "repetitions (the median is reported)")
      ->check(CLI::Range(1, 100));
  app->add_option("--membw-gb", a->membw_gb, "GB streamed by the bandwidth test")
      ->check(CLI::Range(0.0, 64.0));
  app->add_flag("--json", a->json, "print one JSON object on stdout");
  app->add_flag("--batch-invariant", a->batch_invariant,
                "time the batch-invariant matrix products `rme serve` uses (each token's result "
                "as if computed alone)");
  app->callback([a, &run] { run = [a] { return run_bench(*a); }; });
}

int run_bench(BenchArgs a) {
  auto loaded = load(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& m = *loaded->model;
  ThreadPool& pool = ThreadPool::global();
  auto kernels = a.model.kernels();
  if (!kernels.ok()) return fail(kernels.status());
  kernels->batch_invariant = a.batch_invariant;
  if (Status st = prepare_weights(a.model, *loaded->model, *kernels); !st.ok()) return fail(st);
  const int V = m.config.n_vocab;
  int max_pp = 0;
  for (int p : a.pp) {
    if (p < 1 || p > m.config.n_ctx)
      return fail(invalid_argument("--pp " + std::to_string(p) + " outside 1.." +
                                   std::to_string(m.config.n_ctx)));
    max_pp = std::max(max_pp, p);
  }
  if (a.tg + 1 > m.config.n_ctx) return fail(invalid_argument("--tg exceeds the context"));
  const int n_ctx = std::max(max_pp, a.tg + 1);
  if (m.moe.is_moe() && !m.router && a.routing.mode == "router") a.routing.mode = "random";
  std::unique_ptr<Model> dense;  // oracle routing's parent: outlives the router using it
  Forward fwd(m, std::min(max_pp, 512), pool, *kernels);
  if (Status st = a.routing.apply(fwd, dense); !st.ok()) return fail(st);
  KvCache kv(m, n_ctx);
  std::vector<float> logits(static_cast<size_t>(max_pp) * m.config.n_output());
  std::ostringstream js;
  js << "{\"model\": \"" << a.model.model << "\", \"threads\": " << pool.n_threads()
     << ", \"isa\": \"" << isa_name(kernels->isa) << "\""
     << ", \"batch_invariant\": " << (a.batch_invariant ? "true" : "false");
  if (!a.json)
    std::printf("%s: %.2f GB of weights, %d threads, %s%s\n", a.model.model.c_str(),
                m.weight_bytes() / 1e9, pool.n_threads(), kernels->describe().c_str(),
                m.moe.is_moe() ? (", MoE routing " + a.routing.mode).c_str() : "");
  // Warm-up: page the weights in and size the scratch buffers.
  if (Status st = fwd.run(ids_for(std::min(max_pp, 16), V), 0, kv, logits.data(), false); !st.ok())
    return fail(st);
  for (int p : a.pp) {
    const std::vector<int> ids = ids_for(p, V);
    std::vector<double> tps;
    for (int r = 0; r < a.reps; ++r) {
      const double t0 = now_seconds();
      if (Status st = fwd.run(ids, 0, kv, logits.data(), false); !st.ok()) return fail(st);
      tps.push_back(p / (now_seconds() - t0));
    }
    const double med = median(tps);
    js << ", \"pp" << p << "_tps\": " << med;
    if (!a.json) std::printf("pp%-4d %10.1f tok/s\n", p, med);
  }
  std::vector<double> tps;
  for (int r = 0; r < a.reps; ++r) {
    int tok = 1;
    if (Status st = fwd.run(std::span<const int>(&tok, 1), 0, kv, logits.data(), false); !st.ok())
      return fail(st);
    const double t0 = now_seconds();
    for (int i = 1; i <= a.tg; ++i) {
      tok = static_cast<int>(std::max_element(logits.begin(), logits.begin() + V) - logits.begin());
      if (Status st = fwd.run(std::span<const int>(&tok, 1), i, kv, logits.data(), false); !st.ok())
        return fail(st);
    }
    tps.push_back(a.tg / (now_seconds() - t0));
  }
  const double tg = median(tps);
  // Bytes per generated token: weights, plus the K/V read by attention (mean position).
  const double kv_bytes =
      2.0 * m.config.n_layer * m.config.kv_dim() * sizeof(float) * (1 + a.tg / 2.0);
  const double per_tok = static_cast<double>(m.decode_weight_bytes()) + kv_bytes;
  const double eff = per_tok * tg / 1e9;
  const double bw = a.membw_gb > 0 ? measure_read_bandwidth(static_cast<size_t>(a.membw_gb * 1e9),
                                                            5, kernels->isa, pool)
                                   : 0;
  js << ", \"tg" << a.tg << "_tps\": " << tg << ", \"bytes_per_token\": " << per_tok
     << ", \"effective_gbs\": " << eff << ", \"read_bandwidth_gbs\": " << bw
     << ", \"bandwidth_fraction\": " << (bw > 0 ? eff / bw : 0) << "}";
  if (a.json) {
    std::printf("%s\n", js.str().c_str());
  } else {
    std::printf("tg%-4d %10.1f tok/s  (%.1f MB read per token -> %.1f GB/s)\n", a.tg, tg,
                per_tok / 1e6, eff);
    if (bw > 0)
      std::printf(
          "memory  %10.1f GB/s streaming read (%d threads, median of 5); decode "
          "reaches %.0f%% of it\n",
          bw, pool.n_threads(), 100 * eff / bw);
  }
  return 0;
}

}  // namespace rme::cli
