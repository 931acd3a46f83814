// scheduler: cache replay of an expert trace for `rme cache-sim`.
#include "scheduler/cache_sim.h"

#include <algorithm>
#include <set>

namespace rme {

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
