// apps/rme: `rme bench-serve` — drives a running OpenAI-compatible server (rme serve, llama-server)
// either by replaying the Azure LLM inference trace (arrival times, prompt and output lengths) or
// as a closed loop of K clients, and reports throughput and latency percentiles.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "commands.h"
#include "common.h"
#include "core/file.h"
#include "core/timer.h"
#include "report/plot.h"

namespace rme::cli {
namespace {

using nlohmann::json;

struct BenchServeArgs {
  std::string url = "http://127.0.0.1:8080", trace, model, out, label = "run";
  std::vector<std::string> corpus, compare;
  int requests = 100, skip = 0, max_prompt = 1024;
  double time_scale = 1.0, length_scale = 1.0;
  // Closed loop (clients > 0): each client sends its next request when the last one finishes.
  int clients = 0, prompt_tokens = 20, max_tokens = 64;
  uint32_t seed = 1;
};

struct TraceRow {
  double t;
  int ctx, gen;
};

Result<std::vector<TraceRow>> read_trace(const std::string& path, int skip, int n) {
  RME_ASSIGN_OR_RETURN(std::string text, read_file(path));
  std::stringstream in(text);
  std::string line;
  std::getline(in, line);
  if (line.find("ContextTokens") == std::string::npos)
    return invalid_argument(path + ": expected TIMESTAMP,ContextTokens,GeneratedTokens");
  std::vector<TraceRow> rows;
  int i = 0;
  while (std::getline(in, line) && static_cast<int>(rows.size()) < n) {
    if (i++ < skip || line.empty()) continue;
    std::tm tm{};
    double frac = 0;
    int ctx, gen;
    char fracbuf[32] = {0};
    if (std::sscanf(line.c_str(), "%d-%d-%d %d:%d:%d.%31[0-9],%d,%d", &tm.tm_year, &tm.tm_mon,
                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, fracbuf, &ctx, &gen) != 9)
      return invalid_argument(path + ": cannot parse '" + line + "'");
    frac = std::atof((std::string("0.") + fracbuf).c_str());
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    rows.push_back({static_cast<double>(timegm(&tm)) + frac, ctx, gen});
  }
  if (rows.empty()) return invalid_argument(path + ": no requests");
  return rows;
}

struct Sample {
  double arrival, ttft, e2e;
  int n_prompt, n_out;
  bool ok;
};

json summary(std::vector<double> v) {
  if (v.empty()) return json::object();
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) { return v[std::min(v.size() - 1, size_t(p * (v.size() - 1) + 0.5))]; };
  double sum = 0;
  for (double x : v) sum += x;
  return {{"mean", sum / v.size()}, {"p50", pct(0.5)}, {"p95", pct(0.95)}, {"p99", pct(0.99)}};
}

// name -> value of the un-labelled series in a Prometheus text page.
std::map<std::string, double> scrape(httplib::Client& cli) {
  std::map<std::string, double> m;
  auto res = cli.Get("/metrics");
  if (!res || res->status != 200) return m;
  std::stringstream in(res->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    m[line.substr(0, sp)] = std::atof(line.c_str() + sp + 1);
  }
  return m;
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

// One streamed /v1/completions request: true when it finished ([DONE] after HTTP 200); fills
// s.ttft (first non-empty text) and s.e2e.
bool post_completion(const std::string& url, const json& body, Sample& s) {
  httplib::Client cli(url);
  cli.set_read_timeout(3600, 0);
  const double start = now_seconds();
  double first = 0;
  std::string buf;
  bool finished = false;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    buf.append(data, len);
    size_t e;
    while ((e = buf.find("\n\n")) != std::string::npos) {
      const std::string ev = buf.substr(0, e);
      buf.erase(0, e + 2);
      if (ev == "data: [DONE]")
        finished = true;
      else if (first == 0 && ev.find("\"text\":\"\"") == std::string::npos)
        first = now_seconds();
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err;
  const bool sent = cli.send(req, res, err);
  s.ttft = first > 0 ? first - start : 0;
  s.e2e = now_seconds() - start;
  return sent && res.status == 200 && finished;
}

// Token-id prompts of each sample's length, cut at seeded random offsets from the held-out text
// of every domain (so a batch mixes domains), BOS first; for a model without a tokenizer (a random
// GGUF), seeded random ids.
Result<std::vector<std::vector<int>>> make_prompts(const BenchServeArgs& a,
                                                   const std::vector<Sample>& samples) {
  ModelArgs ma;
  ma.model = a.model;
  RME_ASSIGN_OR_RETURN(auto loaded, load(ma));
  std::mt19937 rng(a.seed);
  std::vector<std::vector<int>> prompts;
  if (!loaded.tokenizer) {
    std::uniform_int_distribution<int> id(1, loaded.model->config.n_vocab - 1);
    for (const Sample& s : samples) {
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
  for (const Sample& s : samples) {
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
  app->callback([a, &run] {
    run = [a]() -> int {
      if (!a->compare.empty()) {
        if (a->out.empty()) return fail(invalid_argument("--compare needs --out PNG"));
        Status st = plot_cdfs(a->compare, a->out);
        return st.ok() ? 0 : fail(st);
      }
      if (a->model.empty() || (a->trace.empty() && a->clients == 0))
        return fail(invalid_argument("bench-serve needs --model and either --trace or --clients"));
      // (prompt tokens, output tokens, arrival) per request: the trace's, or the closed loop's.
      std::vector<Sample> samples;
      if (a->clients > 0) {
        samples.assign(a->requests, {0, 0, 0, a->prompt_tokens, a->max_tokens, false});
      } else {
        auto rows = read_trace(a->trace, a->skip, a->requests);
        if (!rows.ok()) return fail(rows.status());
        for (const TraceRow& r : *rows)
          samples.push_back(
              {(r.t - (*rows)[0].t) * a->time_scale, 0, 0,
               std::clamp(int(std::lround(r.ctx * a->length_scale)), 1, a->max_prompt),
               std::max(1, int(std::lround(r.gen * a->length_scale))), false});
      }
      auto prompts = make_prompts(*a, samples);
      if (!prompts.ok()) return fail(prompts.status());
      const size_t n = samples.size();
      std::vector<json> bodies(n);
      for (size_t i = 0; i < n; ++i) {
        samples[i].n_prompt = static_cast<int>((*prompts)[i].size());
        bodies[i] = {{"prompt", (*prompts)[i]},
                     {"max_tokens", samples[i].n_out},
                     {"temperature", 0},
                     {"ignore_eos", true},
                     {"stream", true}};
      }
      httplib::Client probe(a->url);
      const auto before = scrape(probe);
      if (before.empty())
        std::fprintf(stderr, "bench-serve: no rme /metrics at %s (steps and cache left out)\n",
                     a->url.c_str());
      const double t0 = now_seconds();
      std::atomic<int> done{0};
      auto send = [&](size_t i) {
        samples[i].ok = post_completion(a->url, bodies[i], samples[i]);
        const int d = ++done;
        if (d % 10 == 0 || d == int(n))
          std::fprintf(stderr, "\r  %d/%zu done, %.0f s", d, n, now_seconds() - t0);
      };
      std::vector<std::thread> threads;
      if (a->clients > 0) {
        std::fprintf(stderr, "bench-serve: %zu requests from %d clients (closed loop) to %s\n", n,
                     a->clients, a->url.c_str());
        std::atomic<size_t> next{0};
        for (int c = 0; c < a->clients; ++c)
          threads.emplace_back([&] {
            for (size_t i; (i = next++) < n;) {
              samples[i].arrival = now_seconds() - t0;
              send(i);
            }
          });
      } else {
        std::fprintf(stderr, "bench-serve: %zu requests over %.1f s to %s\n", n,
                     samples.back().arrival, a->url.c_str());
        for (size_t i = 0; i < n; ++i) {
          const double wait = samples[i].arrival - (now_seconds() - t0);
          if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
          threads.emplace_back([&, i] { send(i); });
        }
      }
      for (auto& t : threads) t.join();
      const double makespan = now_seconds() - t0;
      std::fprintf(stderr, "\n");
      const auto after = scrape(probe);
      std::vector<double> ttft, tpot, e2e, norm;
      int64_t out_tokens = 0, failed = 0;
      json reqs = json::array();
      for (const Sample& s : samples) {
        if (!s.ok) {
          ++failed;
          continue;
        }
        ttft.push_back(s.ttft);
        if (s.n_out > 1) tpot.push_back((s.e2e - s.ttft) / (s.n_out - 1));
        e2e.push_back(s.e2e);
        norm.push_back(s.e2e / s.n_out);
        out_tokens += s.n_out;
        reqs.push_back({{"arrival", s.arrival},
                        {"n_prompt", s.n_prompt},
                        {"n_out", s.n_out},
                        {"ttft", s.ttft},
                        {"e2e", s.e2e}});
      }
      auto delta = [&](const std::string& k) {
        return (after.count(k) ? after.at(k) : 0) - (before.count(k) ? before.at(k) : 0);
      };
      const double steps = delta("rme_steps_total");
      const double moe_steps = delta("rme_step_distinct_experts_count");  // observed for MoEs only
      const double hits = delta("rme_expert_cache_hits_total"),
                   misses = delta("rme_expert_cache_misses_total");
      json j = {
          {"label", a->label},
          {"requests", reqs},
          {"n_requests", n},
          {"failed", failed},
          {"makespan_s", makespan},
          {"throughput_tok_s", out_tokens / makespan},
          {"ttft_s", summary(ttft)},
          {"tpot_s", summary(tpot)},
          {"e2e_s", summary(e2e)},
          {"normalized_s_per_token", summary(norm)},
          {"steps", steps},
          {"distinct_experts_per_step",
           moe_steps > 0 ? delta("rme_step_distinct_experts_sum") / moe_steps : 0.0},
          {"tokens_per_step", steps > 0 ? delta("rme_step_tokens_sum") / steps : 0.0},
          {"cache_hit_rate", hits + misses > 0 ? json(hits / (hits + misses)) : json(nullptr)},
          {"io_stall_s", delta("rme_expert_io_stall_seconds_total")}};
      json brief = j;
      brief.erase("requests");
      std::printf("%s\n", brief.dump(2).c_str());
      if (!a->out.empty()) {
        if (Status st = write_file_atomic(a->out + ".json", j.dump(1)); !st.ok()) return fail(st);
        if (Status st = plot_cdfs({a->out + ".json"}, a->out + ".png"); !st.ok())
          std::fprintf(stderr, "rme: note: %s\n", st.message().c_str());
      }
      return failed ? 1 : 0;
    };
  });
}

}  // namespace rme::cli
