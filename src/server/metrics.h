// server: Prometheus-style counters and histograms, rendered in the text exposition format.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace rme {

// Cumulative histogram with fixed upper bounds. Thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // "# TYPE name histogram" block with name_bucket{le=..}, name_sum, name_count.
  std::string render(const std::string& name, const std::string& help) const;
  double mean() const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bound, plus +Inf
  double sum_ = 0;
  int64_t n_ = 0;
};

// Exponential bounds lo, lo*f, ... up to hi.
std::vector<double> exp_buckets(double lo, double hi, double f);
std::vector<double> linear_buckets(double lo, double step, int n);

// Point-in-time serving state the loop publishes after each step. Gauges: requests holding KV
// blocks (running) and live ones without (waiting: not admitted yet, or preempted), blocks used,
// the expert cache's hit rate. Totals since start (rendered as counters): the expert cache's hits,
// misses, bytes read and I/O stall.
struct ServingGauges {
  double running = 0, waiting = 0, kv_blocks_used = 0;
  double cache_hit_rate = 0, io_stall_seconds = 0;
  int64_t cache_hits = 0, cache_misses = 0, cache_bytes_read = 0;
};

// What the serving loop and HTTP layer report, rendered for /metrics. Thread-safe: counters and
// gauges behind one private mutex, each histogram behind its own; the loop thread writes, HTTP
// threads add counters and render.
class ServingMetrics {
 public:
  ServingMetrics();
  // Adds v to a counter, e.g. requests_total{status="stop"} (created at 0 on first use).
  void add(const std::string& counter, int64_t v = 1);
  int64_t counter(const std::string& name) const;  // 0 if never added to
  void set_gauges(const ServingGauges& g);
  ServingGauges gauges() const;
  // Prometheus text exposition format: counters, gauges, then the histograms.
  std::string render() const;

  Histogram ttft, tpot, e2e, batch_tokens, batch_seqs, step_experts;

 private:
  mutable std::mutex mu_;
  std::map<std::string, int64_t> counters_;  // requests_total{status}, tokens...
  ServingGauges gauges_;
};

}  // namespace rme
