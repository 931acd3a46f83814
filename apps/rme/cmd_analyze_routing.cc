// apps/rme: `rme analyze-routing` — how an MoE routes real text: expert load per domain, temporal
// locality, layer-to-layer transitions (layer-wise routing); CSV + PNG, and the routing trace.
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "commands.h"
#include "common.h"
#include "core/file.h"
#include "core/thread_pool.h"
#include "formats/text_corpus.h"
#include "moefy/routing_stats.h"
#include "report/plot.h"
#include "scheduler/expert_trace.h"

namespace rme::cli {

void add_analyze_routing_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "analyze-routing", "Expert load, temporal locality and layer transitions of an MoE on text");
  auto a = std::make_shared<AnalyzeArgs>();
  a->model.add(*app);
  a->routing.add(*app);
  app->add_option("--domain", a->domains, "NAME=FILE[,FILE...] text per domain (repeatable)");
  app->add_option("-f,--file", a->files, "text file(s), each its own domain named by the file");
  app->add_option("--tokens", a->tokens, "tokens per domain (at most)")
      ->check(CLI::Range(1, 1 << 30));
  app->add_option("--seq-len", a->seq_len, "tokens per sequence")->check(CLI::Range(2, 1 << 16));
  app->add_option("-o,--out", a->out, "output directory (CSV, PNG, routing trace)")->required();
  app->callback([a, &run] { run = [a] { return run_analyze_routing(*a); }; });
}

int run_analyze_routing(const AnalyzeArgs& a) {
  auto loaded = load(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  if (!loaded->tokenizer) return fail(invalid_argument(a.model.model + ": no tokenizer"));
  const Model& m = *loaded->model;
  if (!m.moe.is_moe()) return fail(invalid_argument(a.model.model + ": not an MoE"));
  std::vector<std::pair<std::string, std::vector<std::string>>> domains;
  for (const auto& s : a.domains) {
    auto d = parse_domain(s);
    if (!d.ok()) return fail(d.status());
    domains.push_back(*d);
  }
  for (const auto& f : a.files) domains.push_back({std::filesystem::path(f).stem().string(), {f}});
  if (domains.empty()) return fail(invalid_argument("give --domain or --file"));
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec) return fail(io_error(a.out + ": " + ec.message()));

  const int len = std::min(a.seq_len, m.config.n_ctx);
  auto kernels = a.model.kernels();
  if (!kernels.ok()) return fail(kernels.status());
  std::unique_ptr<Model> dense;  // oracle routing's parent: outlives the router using it
  Forward fwd(m, 64, ThreadPool::global(), *kernels);
  if (Status st = a.routing.apply(fwd, dense); !st.ok()) return fail(st);
  const bool layer_wise = a.routing.mode == "layer-gate";
  const int rows = layer_wise ? m.config.n_layer : 1;
  std::vector<std::vector<int>> choices(rows);
  fwd.set_route_observer([&](int layer, int, int n, int k, const int* e) {
    auto& row = choices[layer < 0 ? 0 : layer];
    for (int t = 0; t < n; ++t) row.push_back(e[t * k]);  // the top choice
  });
  RoutingStats stats(m.moe.n_expert, rows);
  KvCache kv(m, len);  // one sequence at a time, reused
  RoutingTraceWriter trace;
  for (const auto& [name, files] : domains) {
    int64_t n = 0;
    for (const auto& f : files) {
      auto docs = read_documents(f);
      if (!docs.ok()) return fail(docs.status());
      for (const auto& doc : *docs) {
        std::vector<int> ids = loaded->tokenizer->encode(doc, true);
        for (size_t b = 0; b < ids.size() && n < a.tokens; b += len) {
          std::vector<int> s(ids.begin() + b, ids.begin() + std::min(ids.size(), b + len));
          if (s.size() < 2) break;
          for (auto& r : choices) r.clear();
          if (Status st = fwd.run(s, 0, kv, nullptr, false); !st.ok()) return fail(st);
          stats.add(name, choices);
          trace.add(name, s, choices[0]);
          n += static_cast<int64_t>(s.size());
        }
      }
    }
  }
  if (Status st = trace.write(a.out + "/routing.csv"); !st.ok()) return fail(st);
  // Expert load: one row per expert, one column per domain (shares of the domain's tokens).
  const std::vector<std::vector<double>> heat = stats.load_shares();  // [domain][expert]
  Table load{{"expert"}, {}};
  for (const auto& d : stats.domains()) load.columns.push_back(d);
  for (int e = 0; e < m.moe.n_expert; ++e) {
    std::vector<double> row = {double(e)};
    for (const auto& shares : heat) row.push_back(shares[e]);
    load.rows.push_back(row);
  }
  if (Status st = write_csv(a.out + "/expert_load.csv", load); !st.ok()) return fail(st);
  std::string names;
  for (size_t d = 0; d < stats.domains().size(); ++d)
    names += (d ? ", " : "") + std::to_string(d) + "=" + stats.domains()[d];
  (void)plot_heatmap_png(heat, "share of each domain tokens per expert (" + a.routing.mode + ")",
                         "expert", "domain (" + names + ")", a.out + "/expert_load.png");
  std::printf("routing: %s, %d experts%s\n", a.routing.mode.c_str(), m.moe.n_expert,
              layer_wise ? " (per layer)" : " (one choice for all layers)");
  std::printf("%-10s %10s  load per expert (share of tokens)\n", "domain", "locality");
  Table loc{{"domain_index", "locality"}, {}};
  for (size_t d = 0; d < stats.domains().size(); ++d) {
    std::printf("%-10s %9.1f%% ", stats.domains()[d].c_str(), 100 * stats.locality(d));
    for (int e = 0; e < m.moe.n_expert; ++e) std::printf(" %5.1f", 100 * load.rows[e][d + 1]);
    std::printf("\n");
    loc.rows.push_back({double(d), stats.locality(d)});
  }
  std::printf("%-10s %9.1f%%  (locality: tokens routed like the previous token)\n", "all",
              100 * stats.locality_all());
  loc.rows.push_back({-1, stats.locality_all()});
  if (Status st = write_csv(a.out + "/locality.csv", loc); !st.ok()) return fail(st);
  if (layer_wise) {
    Table mi{{"layer", "mutual_information_bits"}, {}};
    for (int l = 0; l + 1 < rows; ++l) {
      mi.rows.push_back({double(l), stats.mutual_information(l)});
      std::printf("layer %d -> %d: mutual information %.3f bits (max %.3f)\n", l, l + 1,
                  stats.mutual_information(l), std::log2(double(m.moe.n_expert)));
    }
    const std::vector<std::vector<double>> sum = stats.transition_probabilities();
    Table tr{{"from"}, {}};
    for (int j = 0; j < m.moe.n_expert; ++j) tr.columns.push_back("to_" + std::to_string(j));
    for (int i = 0; i < m.moe.n_expert; ++i) {
      std::vector<double> row = {double(i)};
      row.insert(row.end(), sum[i].begin(), sum[i].end());
      tr.rows.push_back(row);
    }
    if (Status st = write_csv(a.out + "/mutual_information.csv", mi); !st.ok()) return fail(st);
    if (Status st = write_csv(a.out + "/transitions.csv", tr); !st.ok()) return fail(st);
    (void)plot_heatmap_png(sum, "P(expert at layer l+1 | expert at layer l), all layers",
                           "expert at layer l+1", "expert at layer l", a.out + "/transitions.png");
  }
  std::printf("wrote %s/{routing,expert_load,locality%s}.csv and PNGs\n", a.out.c_str(),
              layer_wise ? ",transitions,mutual_information" : "");
  return 0;
}

}  // namespace rme::cli
