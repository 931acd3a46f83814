// apps/rme: `rme cache-sim` — replays a routing or step trace through an expert cache and reports
// the hit rate of lru, lfu, belady (limited lookahead) and the offline optimum per capacity.
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "core/file.h"
#include "report/plot.h"
#include "scheduler/cache_sim.h"

namespace rme::cli {
void add_cache_sim_command(CLI::App& root, std::function<int()>& run) {
  auto* app =
      root.add_subcommand("cache-sim", "Expert cache hit rates on a routing trace, offline");
  auto a = std::make_shared<CacheSimArgs>();
  app->add_option("--trace", a->trace,
                  "routing.csv (analyze-routing) or a step trace (serve --trace-out)")
      ->required();
  app->add_option("--capacity", a->capacity, "experts resident (default: every one, 1..n)");
  app->add_option("--policy", a->policy, "lru | lfu | belady | all")
      ->check(CLI::IsMember({"lru", "lfu", "belady", "all"}));
  app->add_option("--batch", a->batch,
                  "routing.csv: sequences decoded together per step (default 8)")
      ->check(CLI::Range(1, 4096));
  app->add_option("--lookahead", a->lookahead,
                  "steps belady sees ahead (what a scheduler has queued; default 4)")
      ->check(CLI::Range(0, 1 << 30));
  app->add_option("--order", a->order,
                  "routing.csv: file (sequences in file order: one domain at a time) | mixed "
                  "(shuffled across domains, as a server sees them)")
      ->check(CLI::IsMember({"file", "mixed"}));
  app->add_option("--seed", a->seed, "--order mixed: the shuffle's seed (default 1)");
  app->add_option("--experts", a->n_expert, "number of experts (default: from the trace)");
  app->add_option("--out", a->out, "write OUT.csv and OUT.png (hit rate vs capacity)");
  app->callback([a, &run] { run = [a] { return run_cache_sim(*a); }; });
}

int run_cache_sim(const CacheSimArgs& a) {
  auto text = read_file(a.trace);
  if (!text.ok()) return fail(text.status());
  auto trace = parse_expert_trace(*text, a.batch, a.n_expert, a.order == "mixed", a.seed);
  if (!trace.ok()) return fail(trace.status());
  std::vector<int> caps = a.capacity;
  if (caps.empty())
    for (int c = 1; c <= trace->n_expert; ++c) caps.push_back(c);
  std::vector<Eviction> policies;
  if (a.policy == "all") {
    policies = {Eviction::kLru, Eviction::kLfu, Eviction::kBelady};
  } else {
    policies = {parse_eviction(a.policy).value()};
  }
  std::printf(
      "trace: %zu steps, %lld expert uses (%.2f distinct experts per step), %d experts "
      "(lookahead %d steps, %s order)\n",
      trace->steps.size(), static_cast<long long>(trace->n_accesses()),
      trace->steps.empty() ? 0.0 : double(trace->n_accesses()) / trace->steps.size(),
      trace->n_expert, a.lookahead, a.order.c_str());
  std::printf("%-9s", "capacity");
  for (Eviction p : policies) std::printf("%9s", eviction_name(p));
  std::printf("%9s\n", "optimal");
  Table t{{"capacity"}, {}};
  for (Eviction p : policies) t.columns.push_back(eviction_name(p));
  t.columns.push_back("optimal");
  for (int c : caps) {
    if (c < 1) return fail(invalid_argument("cache-sim: capacity must be >= 1"));
    std::vector<double> row = {double(c)};
    std::printf("%-9d", c);
    for (Eviction p : policies) {
      const double h = simulate_cache(*trace, c, p, a.lookahead).hit_rate();
      row.push_back(h);
      std::printf("%8.1f%%", 100 * h);
    }
    const double opt = simulate_optimal(*trace, c).hit_rate();
    row.push_back(opt);
    std::printf("%8.1f%%\n", 100 * opt);
    t.rows.push_back(row);
  }
  if (!a.out.empty()) {
    if (Status st = write_csv(a.out + ".csv", t); !st.ok()) return fail(st);
    PlotSpec spec{"Expert cache hit rate", "capacity (experts)", "hit rate", 0, {}};
    for (size_t i = 1; i < t.columns.size(); ++i) spec.y_columns.push_back(int(i));
    if (Status st = plot_png(a.out + ".csv", t, spec, a.out + ".png"); !st.ok())
      std::fprintf(stderr, "rme: note: %s\n", st.message().c_str());
  }
  return 0;
}

}  // namespace rme::cli
