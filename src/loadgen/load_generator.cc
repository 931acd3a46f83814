// loadgen: the client pool, SSE splitting, latency summaries, metrics scraping, trace rows.
#include "loadgen/load_generator.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/timer.h"

namespace rme {
namespace {

// One streamed completion; times are measured from `due` (seconds on the now_seconds() clock).
void send_one(const LoadgenOptions& o, const std::string& body, double due, LoadResult& r) {
  httplib::Client cli(o.url);
  const time_t sec = static_cast<time_t>(o.read_timeout_s);
  cli.set_read_timeout(sec, static_cast<time_t>((o.read_timeout_s - sec) * 1e6));
  double first = 0;
  bool finished = false;
  SseSplitter sse;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    sse.feed(data, len, [&](const std::string& ev) {
      if (ev == "data: [DONE]")
        finished = true;
      else if (first == 0 && ev.find("\"text\":\"\"") == std::string::npos)
        first = now_seconds();
    });
    return true;
  };
  httplib::Response res;
  httplib::Error err;
  const bool sent = cli.send(req, res, err);
  r.ttft = first > 0 ? first - due : 0;
  r.e2e = now_seconds() - due;
  r.ok = sent && res.status == 200 && finished;
}

}  // namespace

std::vector<LoadResult> run_load(const LoadgenOptions& o, const std::vector<LoadRequest>& requests,
                                 const std::function<void(size_t, size_t)>& progress) {
  const size_t n = requests.size();
  std::vector<LoadResult> results(n);
  const size_t pool = std::min<size_t>(std::max(1, o.clients > 0 ? o.clients : o.max_connections),
                                       std::max<size_t>(n, 1));
  std::atomic<size_t> next{0};
  std::mutex progress_mu;
  size_t done = 0;
  const double t0 = now_seconds();
  // Every client takes the next request in order; open loop, it waits until that one is due.
  auto client = [&] {
    for (size_t i; (i = next++) < n;) {
      LoadResult& r = results[i];
      double due = now_seconds();
      if (o.clients == 0) {
        due = t0 + requests[i].due;
        const double wait = due - now_seconds();
        if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
        r.delay = std::max(0.0, now_seconds() - due);
      }
      r.due = due - t0;
      send_one(o, requests[i].body, due, r);
      std::lock_guard<std::mutex> lock(progress_mu);
      ++done;
      if (progress) progress(done, n);
    }
  };
  std::vector<std::thread> threads;
  for (size_t c = 0; c < pool; ++c) threads.emplace_back(client);
  for (auto& t : threads) t.join();
  return results;
}

void SseSplitter::feed(const char* data, size_t n,
                       const std::function<void(const std::string&)>& on_event) {
  buf_.append(data, n);
  size_t start = 0, end;
  while ((end = buf_.find("\n\n", start)) != std::string::npos) {
    on_event(buf_.substr(start, end - start));
    start = end + 2;
  }
  buf_.erase(0, start);
}

LatencySummary summarize(std::vector<double> v) {
  LatencySummary s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) { return v[std::min(v.size() - 1, size_t(p * (v.size() - 1) + 0.5))]; };
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / v.size();
  s.p50 = pct(0.5);
  s.p95 = pct(0.95);
  s.p99 = pct(0.99);
  return s;
}

std::map<std::string, double> scrape_metrics(const std::string& url) {
  std::map<std::string, double> m;
  httplib::Client cli(url);
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

Result<std::vector<TraceRow>> parse_azure_trace(const std::string& text, int skip, int n) {
  std::stringstream in(text);
  std::string line;
  std::getline(in, line);
  if (line.find("ContextTokens") == std::string::npos)
    return invalid_argument("trace: expected the header TIMESTAMP,ContextTokens,GeneratedTokens");
  std::vector<TraceRow> rows;
  int i = 0;
  while (std::getline(in, line) && static_cast<int>(rows.size()) < n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (i++ < skip || line.empty()) continue;
    std::tm tm{};
    int ctx = 0, gen = 0;
    char frac[32] = {0};
    if (std::sscanf(line.c_str(), "%d-%d-%d %d:%d:%d.%31[0-9],%d,%d", &tm.tm_year, &tm.tm_mon,
                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, frac, &ctx, &gen) != 9 ||
        ctx < 0 || gen < 0)
      return invalid_argument("trace line " + std::to_string(i + 1) + ": cannot parse '" + line +
                              "'");
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const double f = std::atof((std::string("0.") + frac).c_str());
    rows.push_back({static_cast<double>(timegm(&tm)) + f, ctx, gen});
  }
  if (rows.empty()) return invalid_argument("trace: no requests");
  return rows;
}

}  // namespace rme
