// scheduler: trace parsing and cache replay for `rme cache-sim`.
#include "scheduler/cache_sim.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <sstream>

namespace rme {

int64_t ExpertTrace::n_accesses() const {
  int64_t n = 0;
  for (const auto& s : steps) n += static_cast<int64_t>(s.size());
  return n;
}

namespace {

std::vector<std::string> split(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();  // CSV written on Windows (CRLF)
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) out.push_back(cell);
  return out;
}

Result<int64_t> to_int(const std::string& s, int line) {
  try {
    size_t used = 0;
    const long long v = std::stoll(s, &used);
    if (used == s.size()) return static_cast<int64_t>(v);
  } catch (...) {
  }
  return invalid_argument("trace line " + std::to_string(line) + ": '" + s + "' is not a number");
}

}  // namespace

Result<ExpertTrace> parse_expert_trace(const std::string& csv, int batch, int n_expert, bool mixed,
                                       uint32_t seed) {
  std::stringstream in(csv);
  std::string line;
  if (!std::getline(in, line)) return invalid_argument("trace: empty");
  const auto head = split(line);
  auto col = [&](const std::string& name) {
    auto it = std::find(head.begin(), head.end(), name);
    return it == head.end() ? -1 : static_cast<int>(it - head.begin());
  };
  const int c_step = col("step"), c_seq = col("seq"), c_expert = col("expert");
  if (c_expert < 0 || (c_step < 0 && c_seq < 0))
    return invalid_argument("trace: need columns step,expert or seq,pos,expert; got '" + line +
                            "'");
  std::map<int64_t, std::vector<int>> by_key;  // step -> experts, or seq -> experts by position
  std::vector<int64_t> seq_order;
  int max_e = -1, n_line = 1;
  while (std::getline(in, line)) {
    ++n_line;
    if (line.empty()) continue;
    const auto cells = split(line);
    const int key_col = c_step >= 0 ? c_step : c_seq;
    if (static_cast<int>(cells.size()) <= std::max(key_col, c_expert))
      return invalid_argument("trace line " + std::to_string(n_line) + ": too few columns");
    RME_ASSIGN_OR_RETURN(int64_t key, to_int(cells[key_col], n_line));
    RME_ASSIGN_OR_RETURN(int64_t e, to_int(cells[c_expert], n_line));
    if (e < 0 || e > 1 << 20)
      return invalid_argument("trace line " + std::to_string(n_line) + ": bad expert id");
    if (!by_key.count(key)) seq_order.push_back(key);
    by_key[key].push_back(static_cast<int>(e));
    max_e = std::max(max_e, static_cast<int>(e));
  }
  ExpertTrace t;
  t.n_expert = n_expert > 0 ? n_expert : max_e + 1;
  if (max_e >= t.n_expert)
    return invalid_argument("trace: expert " + std::to_string(max_e) + " >= n_expert " +
                            std::to_string(t.n_expert));
  auto distinct = [](std::vector<int> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  };
  if (c_step >= 0) {
    for (auto& [step, experts] : by_key) t.steps.push_back(distinct(experts));
    return t;
  }
  // Continuous batching of `batch` sequences in file order, or shuffled across domains.
  if (mixed) std::shuffle(seq_order.begin(), seq_order.end(), std::mt19937(seed));
  batch = std::max(1, batch);
  std::vector<std::pair<const std::vector<int>*, size_t>> active;
  size_t next_seq = 0;
  for (;;) {
    while (static_cast<int>(active.size()) < batch && next_seq < seq_order.size())
      active.push_back({&by_key[seq_order[next_seq++]], 0});
    if (active.empty()) break;
    std::vector<int> step;
    for (auto& [seq, at] : active) step.push_back((*seq)[at++]);
    t.steps.push_back(distinct(step));
    std::erase_if(active, [](const auto& a) { return a.second >= a.first->size(); });
  }
  return t;
}

CacheSimResult simulate_cache(const ExpertTrace& trace, int capacity, Eviction policy,
                              int lookahead) {
  const int E = trace.n_expert;
  // The uses in order, each with its step: a step loads its experts one after another, and an
  // expert it has already used may make room for the next one (demand paging, like MIN).
  std::vector<int> flat;
  std::vector<int64_t> step_of, step_end;  // step_end[s] = index one past step s's last use
  for (size_t s = 0; s < trace.steps.size(); ++s) {
    for (int e : trace.steps[s]) {
      flat.push_back(e);
      step_of.push_back(static_cast<int64_t>(s));
    }
    step_end.push_back(static_cast<int64_t>(flat.size()));
  }
  ExpertCacheState cache(E, capacity, policy);
  CacheSimResult r{eviction_name(policy), capacity, 0, static_cast<int64_t>(flat.size())};
  std::vector<int64_t> next_use(E);
  std::vector<char> pinned(E, 0);
  const int64_t n = static_cast<int64_t>(flat.size());
  const int64_t n_steps = static_cast<int64_t>(step_end.size());
  for (int64_t i = 0; i < n; ++i) {
    const int e = flat[i];
    if (cache.resident(e)) {
      ++r.hits;
      cache.touch(e, i);
      continue;
    }
    if (policy == Eviction::kBelady) {  // known: the rest of this step and `lookahead` more
      std::fill(next_use.begin(), next_use.end(), kNeverUsed);
      const int64_t last = step_end[std::min(n_steps - 1, step_of[i] + lookahead)];
      for (int64_t j = last - 1; j > i; --j) next_use[flat[j]] = j;
    }
    pinned[e] = 1;  // only the expert being loaded
    int evicted;
    cache.insert(e, i, next_use, pinned, &evicted);
    pinned[e] = 0;
  }
  return r;
}

CacheSimResult simulate_optimal(const ExpertTrace& trace, int capacity) {
  std::vector<int> flat;
  for (const auto& s : trace.steps) flat.insert(flat.end(), s.begin(), s.end());
  const int64_t misses = optimal_misses(flat, trace.n_expert, capacity);
  return {"optimal", capacity, static_cast<int64_t>(flat.size()) - misses,
          static_cast<int64_t>(flat.size())};
}

}  // namespace rme
