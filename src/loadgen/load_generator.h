// loadgen: drives an OpenAI-compatible server (rme serve, llama-server) with streamed completion
// requests from a bounded pool of client threads, open loop (at given arrival times) or closed
// loop (K clients, each sending its next request when its last one finishes); latency summaries
// and the server's Prometheus counters. What `rme bench-serve` runs.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace rme {

struct LoadRequest {
  double due = 0;    // open loop: seconds after the start at which the request is sent
  std::string body;  // JSON of a streamed POST /v1/completions
};

struct LoadResult {
  double due = 0;    // when it was due (open loop) or sent (closed loop), seconds after the start
  double delay = 0;  // open loop: how long it waited for a free client after it was due
  double ttft = 0;   // due -> first non-empty text (0 if none)
  double e2e = 0;    // due -> end of the response
  bool ok = false;   // HTTP 200 and the stream ended with [DONE]
};

struct LoadgenOptions {
  std::string url = "http://127.0.0.1:8080";
  // > 0: closed loop with this many clients (LoadRequest::due ignored). 0: open loop.
  int clients = 0;
  // Open loop: client threads, so requests in flight, at most. A request due while every client is
  // busy waits (LoadResult::delay) and its latency counts from when it was due, as a user's would.
  int max_connections = 256;
  double read_timeout_s = 3600;
};

// Sends every request and returns one result per request, in order. progress(done, total) is
// called after each response, from one thread at a time. Failed requests (no server, HTTP error,
// a stream cut short) are results with ok = false; this never throws. Threads: min(clients or
// max_connections, number of requests), joined before it returns.
std::vector<LoadResult> run_load(const LoadgenOptions& options,
                                 const std::vector<LoadRequest>& requests,
                                 const std::function<void(size_t, size_t)>& progress = {});

// Splits a server-sent-events byte stream into events (the text between blank lines), across
// however the bytes arrive. Not thread-safe.
class SseSplitter {
 public:
  // Appends bytes and calls on_event(event) for every event they complete.
  void feed(const char* data, size_t n, const std::function<void(const std::string&)>& on_event);

 private:
  std::string buf_;
};

struct LatencySummary {
  size_t n = 0;
  double mean = 0, p50 = 0, p95 = 0, p99 = 0;  // nearest-rank percentiles
};
LatencySummary summarize(std::vector<double> values);

// name -> value of each un-labelled or labelled series line of url's /metrics page (Prometheus
// text format); empty when the page is missing (a server without metrics).
std::map<std::string, double> scrape_metrics(const std::string& url);

// One row of the Azure LLM inference trace (TIMESTAMP,ContextTokens,GeneratedTokens).
struct TraceRow {
  double t = 0;  // seconds (epoch, fractional)
  int ctx = 0, gen = 0;
};
// Rows skip .. skip+n-1 of a trace's text; fails naming the line it cannot parse.
Result<std::vector<TraceRow>> parse_azure_trace(const std::string& text, int skip, int n);

}  // namespace rme
