// server: histogram bookkeeping and the Prometheus text rendering.
#include "server/metrics.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace rme {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  ++counts_[i];
  sum_ += v;
  ++n_;
}

double Histogram::mean() const {
  std::lock_guard<std::mutex> lock(mu_);
  return n_ ? sum_ / n_ : 0;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream o;
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  int64_t cum = 0;
  char le[64];
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    std::snprintf(le, sizeof le, "%g", bounds_[i]);
    o << name << "_bucket{le=\"" << le << "\"} " << cum << "\n";
  }
  cum += counts_.back();
  o << name << "_bucket{le=\"+Inf\"} " << cum << "\n";
  o << name << "_sum " << sum_ << "\n" << name << "_count " << n_ << "\n";
  return o.str();
}

std::vector<double> exp_buckets(double lo, double hi, double f) {
  std::vector<double> b;
  for (double x = lo; x <= hi * 1.0001; x *= f) b.push_back(x);
  return b;
}

std::vector<double> linear_buckets(double lo, double step, int n) {
  std::vector<double> b;
  for (int i = 0; i < n; ++i) b.push_back(lo + i * step);
  return b;
}

ServingMetrics::ServingMetrics()
    : ttft(exp_buckets(0.005, 60, 2)),
      tpot(exp_buckets(0.001, 10, 2)),
      e2e(exp_buckets(0.01, 600, 2)),
      batch_tokens(exp_buckets(1, 1024, 2)),
      batch_seqs(exp_buckets(1, 256, 2)),
      step_experts(linear_buckets(0, 1, 17)) {}

void ServingMetrics::add(const std::string& counter, int64_t v) {
  std::lock_guard<std::mutex> lock(mu_);
  counters_[counter] += v;
}

int64_t ServingMetrics::counter(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counters_.find(name);
  return it == counters_.end() ? 0 : it->second;
}

void ServingMetrics::set_gauges(const ServingGauges& g) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_ = g;
}

ServingGauges ServingMetrics::gauges() const {
  std::lock_guard<std::mutex> lock(mu_);
  return gauges_;
}

std::string ServingMetrics::render() const {
  std::ostringstream o;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const ServingGauges& g = gauges_;
    std::string last;
    for (const auto& [key, v] : counters_) {
      const std::string base = key.substr(0, key.find('{'));
      if (base != last) o << "# TYPE rme_" << base << " counter\n";
      last = base;
      o << "rme_" << key << " " << v << "\n";
    }
    auto gauge = [&](const char* name, double v) {
      o << "# TYPE rme_" << name << " gauge\nrme_" << name << " " << v << "\n";
    };
    // Totals since start that only grow: counters (Prometheus' rate() needs the type).
    auto counter = [&](const char* name, double v) {
      o << "# TYPE rme_" << name << " counter\nrme_" << name << " " << v << "\n";
    };
    gauge("running_requests", g.running);
    gauge("waiting_requests", g.waiting);
    gauge("kv_blocks_used", g.kv_blocks_used);
    gauge("expert_cache_hit_rate", g.cache_hit_rate);
    counter("expert_cache_hits_total", static_cast<double>(g.cache_hits));
    counter("expert_cache_misses_total", static_cast<double>(g.cache_misses));
    counter("expert_cache_bytes_read_total", static_cast<double>(g.cache_bytes_read));
    counter("expert_io_stall_seconds_total", g.io_stall_seconds);
  }
  o << ttft.render("rme_time_to_first_token_seconds", "Time from arrival to the first token.");
  o << tpot.render("rme_time_per_output_token_seconds", "Mean gap between output tokens.");
  o << e2e.render("rme_request_latency_seconds", "Arrival to last token.");
  o << batch_tokens.render("rme_step_tokens", "Tokens per engine step.");
  o << batch_seqs.render("rme_step_sequences", "Sequences per engine step.");
  o << step_experts.render("rme_step_distinct_experts", "Distinct routed experts per step.");
  return o.str();
}

}  // namespace rme
