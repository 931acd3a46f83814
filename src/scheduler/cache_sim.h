// scheduler: offline replay of a routing trace through an expert cache (`rme cache-sim`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "scheduler/cache_policy.h"
#include "scheduler/expert_trace.h"

namespace rme {

struct CacheSimResult {
  std::string policy;  // lru | lfu | belady | optimal
  int capacity = 0;
  int64_t hits = 0, accesses = 0;
  double hit_rate() const { return accesses ? double(hits) / accesses : 0; }
};

// Replays the trace at one capacity (in experts): a step's experts are used one after another
// (demand paging; an expert the step has used may be evicted for the next). belady knows the
// rest of the step and the next `lookahead` steps (what a scheduler has queued); optimal (MIN)
// knows everything, so belady with an unbounded lookahead equals it.
CacheSimResult simulate_cache(const ExpertTrace& trace, int capacity, Eviction policy,
                              int lookahead);
CacheSimResult simulate_optimal(const ExpertTrace& trace, int capacity);

}  // namespace rme
