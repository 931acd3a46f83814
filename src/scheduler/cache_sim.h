// scheduler: offline replay of a routing trace through an expert cache (`rme cache-sim`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "scheduler/cache_policy.h"

namespace rme {

// Steps of a serving run: the distinct experts each step needed, in order.
struct ExpertTrace {
  int n_expert = 0;
  std::vector<std::vector<int>> steps;
  int64_t n_accesses() const;
};

// Reads either a step trace (CSV with columns step,expert — what `rme serve --trace-out` and
// bench runs write) or a per-token routing trace (analyze-routing's routing.csv: seq,pos,expert).
// A routing trace is turned into decode steps of `batch` sequences run together, a finished one
// replaced by the next (continuous batching), taken in file order or, with mixed, in an order
// shuffled by `seed` (a routing.csv lists each domain's sequences together, so file order decodes
// one domain at a time; a server sees every domain at once). n_expert 0 = one more than the
// largest id seen.
Result<ExpertTrace> parse_expert_trace(const std::string& csv, int batch, int n_expert,
                                       bool mixed = false, uint32_t seed = 1);

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
