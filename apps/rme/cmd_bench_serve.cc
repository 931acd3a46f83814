// apps/rme: `rme bench-serve` — drives a running OpenAI-compatible server (rme serve, llama-server)
// either by replaying the Azure LLM inference trace (arrival times, prompt and output lengths) or
// as a closed loop of K clients, and reports throughput and latency percentiles.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "commands.h"
#include "common.h"
#include "core/file.h"
#include "core/timer.h"
#include "loadgen/load_generator.h"
#include "report/plot.h"

namespace rme::cli {
namespace {

using nlohmann::json;

// One request as the benchmark plans it: prompt and output lengths (the trace's or the closed
// loop's) and, open loop, when it is due.
struct Planned {
  double due;
  int n_prompt, n_out;
};

json summary_json(std::vector<double> v) {
  if (v.empty()) return json::object();
  const LatencySummary s = summarize(std::move(v));
  return {{"mean", s.mean}, {"p50", s.p50}, {"p95", s.p95}, {"p99", s.p99}};
}

Status plot_cdfs(const std::vector<std::string>& files, const std::string& png) {
  Table t{{"normalized_latency_s_per_token"}, {}};
  std::vector<std::vector<double>> series;
  for (const auto& f : files) {
    RME_ASSIGN_OR_RETURN(std::string text, read_file(f));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.contains("requests")) return invalid_argument(f + ": not a result");
    t.columns.push_back(j.value("label", f));
    std::vector<double> v;
    for (const auto& r : j["requests"]) v.push_back(r["e2e"].get<double>() / r["n_out"].get<int>());
    std::sort(v.begin(), v.end());
    series.push_back(v);
  }
  // One row per (value, series) point: x = latency, the series' CDF in its column.
  for (size_t s = 0; s < series.size(); ++s)
    for (size_t i = 0; i < series[s].size(); ++i) {
      std::vector<double> row(1 + series.size(), NAN);
      row[0] = series[s][i];
      row[1 + s] = double(i + 1) / series[s].size();
      t.rows.push_back(row);
    }
  std::sort(t.rows.begin(), t.rows.end());
  PlotSpec spec{"Normalized latency CDF", "end-to-end / output tokens (s)", "fraction", 0, {}};
  for (size_t i = 1; i < t.columns.size(); ++i) spec.y_columns.push_back(int(i));
  spec.log_x = true;
  RME_RETURN_IF_ERROR(write_csv(png + ".csv", t));
  return plot_png(png + ".csv", t, spec, png);
}

// Token-id prompts of each sample's length, cut at seeded random offsets from the held-out text
// of every domain (so a batch mixes domains), BOS first; for a model without a tokenizer (a random
// GGUF), seeded random ids.
Result<std::vector<std::vector<int>>> make_prompts(const BenchServeArgs& a,
                                                   const std::vector<Planned>& samples) {
  ModelArgs ma;
  ma.model = a.model;
  RME_ASSIGN_OR_RETURN(auto loaded, load(ma));
  std::mt19937 rng(a.seed);
  std::vector<std::vector<int>> prompts;
  if (!loaded.tokenizer) {
    std::uniform_int_distribution<int> id(1, loaded.model->config.n_vocab - 1);
    for (const Planned& s : samples) {
      std::vector<int> p(s.n_prompt);
      for (int& t : p) t = id(rng);
      prompts.push_back(std::move(p));
    }
    return prompts;
  }
  std::vector<std::string> files = a.corpus;
  if (files.empty()) {
    RME_ASSIGN_OR_RETURN(const std::string data, data_dir());
    for (const char* d : {"books", "code", "dialogue", "math", "qa", "stories", "wiki"})
      files.push_back(data + "/eval/" + d + ".txt");
  }
  std::vector<int> ids;
  for (const auto& f : files) {
    RME_ASSIGN_OR_RETURN(std::string text, read_file(f));
    auto v = loaded.tokenizer->encode(text, false);
    ids.insert(ids.end(), v.begin(), v.end());
  }
  if (ids.size() < 2) return invalid_argument("bench-serve: empty corpus");
  const int bos = loaded.tokenizer->special().bos;
  for (const Planned& s : samples) {
    const size_t np = std::min<size_t>(s.n_prompt, ids.size() - 1);
    const size_t at = std::uniform_int_distribution<size_t>(0, ids.size() - np)(rng);
    std::vector<int> p(ids.begin() + at, ids.begin() + at + np);
    if (bos >= 0) p[0] = bos;
    prompts.push_back(std::move(p));
  }
  return prompts;
}

}  // namespace

void add_bench_serve_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "bench-serve", "Drive a server: replay an LLM inference trace, or a closed loop of clients");
  auto a = std::make_shared<BenchServeArgs>();
  app->add_option("--url", a->url, "server (default http://127.0.0.1:8080)");
  app->add_option("--trace", a->trace, "Azure LLM inference trace CSV (replayed)");
  app->add_option("--clients", a->clients,
                  "closed loop instead of a trace: this many clients, each sending its next "
                  "request when the last finishes")
      ->check(CLI::Range(1, 4096));
  app->add_option("--prompt-tokens", a->prompt_tokens, "closed loop: prompt length (default 20)")
      ->check(CLI::Range(1, 1000000));
  app->add_option("--max-tokens", a->max_tokens, "closed loop: tokens per completion (default 64)")
      ->check(CLI::Range(1, 1000000));
  app->add_option("--max-connections", a->max_connections,
                  "trace replay: requests in flight at most (a bounded pool of client threads; a "
                  "request due while all are busy waits, and its latency counts from when it was "
                  "due); default 256")
      ->check(CLI::Range(1, 4096));
  app->add_option("--seed", a->seed, "seed of the prompts' offsets in the text (default 1)");
  app->add_option("--model", a->model, "the served model (its tokenizer cuts the prompts)");
  app->add_option("--corpus", a->corpus, "text files prompts are cut from (default data/eval/*)");
  app->add_option("--requests", a->requests, "requests to send (default 100)")
      ->check(CLI::Range(1, 1000000));
  app->add_option("--skip", a->skip, "trace rows to skip first");
  app->add_option("--time-scale", a->time_scale, "multiply arrival gaps (< 1 = more load)")
      ->check(CLI::Range(1e-6, 1e6));
  app->add_option("--length-scale", a->length_scale, "multiply prompt and output lengths")
      ->check(CLI::Range(1e-6, 1e3));
  app->add_option("--max-prompt", a->max_prompt, "cap on prompt tokens");
  app->add_option("--label", a->label, "name of this run in the results and plots");
  app->add_option("--out", a->out, "write OUT.json and OUT.png (latency CDF)");
  app->add_option("--compare", a->compare, "plot the CDFs of several OUT.json files into --out");
  app->callback([a, &run] { run = [a] { return run_bench_serve(*a); }; });
}

int run_bench_serve(const BenchServeArgs& a) {
  if (!a.compare.empty()) {
    if (a.out.empty()) return fail(invalid_argument("--compare needs --out PNG"));
    Status st = plot_cdfs(a.compare, a.out);
    return st.ok() ? 0 : fail(st);
  }
  if (a.model.empty() || (a.trace.empty() && a.clients == 0))
    return fail(invalid_argument("bench-serve needs --model and either --trace or --clients"));
  // (arrival, prompt tokens, output tokens) per request: the trace's, or the closed loop's.
  std::vector<Planned> samples;
  if (a.clients > 0) {
    samples.assign(a.requests, {0, a.prompt_tokens, a.max_tokens});
  } else {
    auto text = read_file(a.trace);
    if (!text.ok()) return fail(text.status());
    auto rows = parse_azure_trace(*text, a.skip, a.requests);
    if (!rows.ok()) return fail(rows.status().with_context(a.trace));
    for (const TraceRow& r : *rows)
      samples.push_back({(r.t - (*rows)[0].t) * a.time_scale,
                         std::clamp(int(std::lround(r.ctx * a.length_scale)), 1, a.max_prompt),
                         std::max(1, int(std::lround(r.gen * a.length_scale)))});
  }
  auto prompts = make_prompts(a, samples);
  if (!prompts.ok()) return fail(prompts.status());
  const size_t n = samples.size();
  std::vector<LoadRequest> requests(n);
  for (size_t i = 0; i < n; ++i) {
    samples[i].n_prompt = static_cast<int>((*prompts)[i].size());
    const json body = {{"prompt", (*prompts)[i]},
                       {"max_tokens", samples[i].n_out},
                       {"temperature", 0},
                       {"ignore_eos", true},
                       {"stream", true}};
    requests[i] = {samples[i].due, body.dump()};
  }
  const auto before = scrape_metrics(a.url);
  if (before.empty())
    std::fprintf(stderr, "bench-serve: no rme /metrics at %s (steps and cache left out)\n",
                 a.url.c_str());
  LoadgenOptions lo;
  lo.url = a.url;
  lo.clients = a.clients;
  lo.max_connections = a.max_connections;
  if (a.clients > 0)
    std::fprintf(stderr, "bench-serve: %zu requests from %d clients (closed loop) to %s\n", n,
                 a.clients, a.url.c_str());
  else
    std::fprintf(stderr, "bench-serve: %zu requests over %.1f s to %s (at most %d at once)\n", n,
                 samples.back().due, a.url.c_str(), a.max_connections);
  const double t0 = now_seconds();
  const std::vector<LoadResult> results = run_load(lo, requests, [&](size_t d, size_t total) {
    if (d % 10 == 0 || d == total)
      std::fprintf(stderr, "\r  %zu/%zu done, %.0f s", d, total, now_seconds() - t0);
  });
  const double makespan = now_seconds() - t0;
  std::fprintf(stderr, "\n");
  const auto after = scrape_metrics(a.url);
  std::vector<double> ttft, tpot, e2e, norm, delay;
  int64_t out_tokens = 0, failed = 0;
  json reqs = json::array();
  for (size_t i = 0; i < n; ++i) {
    const LoadResult& r = results[i];
    const Planned& s = samples[i];
    if (!r.ok) {
      ++failed;
      continue;
    }
    ttft.push_back(r.ttft);
    if (s.n_out > 1) tpot.push_back((r.e2e - r.ttft) / (s.n_out - 1));
    e2e.push_back(r.e2e);
    norm.push_back(r.e2e / s.n_out);
    delay.push_back(r.delay);
    out_tokens += s.n_out;
    reqs.push_back({{"arrival", r.due},
                    {"n_prompt", s.n_prompt},
                    {"n_out", s.n_out},
                    {"ttft", r.ttft},
                    {"e2e", r.e2e},
                    {"client_delay", r.delay}});
  }
  auto delta = [&](const std::string& k) {
    return (after.count(k) ? after.at(k) : 0) - (before.count(k) ? before.at(k) : 0);
  };
  const double steps = delta("rme_steps_total");
  const double moe_steps = delta("rme_step_distinct_experts_count");  // observed for MoEs only
  const double hits = delta("rme_expert_cache_hits_total"),
               misses = delta("rme_expert_cache_misses_total");
  json j = {{"label", a.label},
            {"requests", reqs},
            {"n_requests", n},
            {"failed", failed},
            {"makespan_s", makespan},
            {"throughput_tok_s", out_tokens / makespan},
            {"ttft_s", summary_json(ttft)},
            {"tpot_s", summary_json(tpot)},
            {"e2e_s", summary_json(e2e)},
            {"normalized_s_per_token", summary_json(norm)},
            {"client_delay_s", summary_json(delay)},
            {"steps", steps},
            {"distinct_experts_per_step",
             moe_steps > 0 ? delta("rme_step_distinct_experts_sum") / moe_steps : 0.0},
            {"tokens_per_step", steps > 0 ? delta("rme_step_tokens_sum") / steps : 0.0},
            {"cache_hit_rate", hits + misses > 0 ? json(hits / (hits + misses)) : json(nullptr)},
            {"io_stall_s", delta("rme_expert_io_stall_seconds_total")}};
  json brief = j;
  brief.erase("requests");
  std::printf("%s\n", brief.dump(2).c_str());
  if (!a.out.empty()) {
    if (Status st = write_file_atomic(a.out + ".json", j.dump(1)); !st.ok()) return fail(st);
    if (Status st = plot_cdfs({a.out + ".json"}, a.out + ".png"); !st.ok())
      std::fprintf(stderr, "rme: note: %s\n", st.message().c_str());
  }
  return failed ? 1 : 0;
}

}  // namespace rme::cli
