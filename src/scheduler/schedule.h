// scheduler: which tokens of which requests run in the next step — a pure policy over plain data
// (no tensors, no clocks), in vLLM's schedule() -> execute -> update() loop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "scheduler/step_cost.h"

namespace rme {

// What the scheduler sees of one live request. The engine fills it before each schedule().
struct SeqInfo {
  int64_t id = 0;
  int64_t arrival = 0;        // arrival order (smaller = earlier); ties broken by id
  int n_computed = 0;         // tokens whose K/V are cached
  int n_known = 0;            // prompt + sampled tokens; pending = n_known - n_computed
  int n_blocks = 0;           // KV blocks held (0 = waiting: not admitted, or preempted)
  int64_t waiting_since = 0;  // step at which it last ran (or arrived): the aging clock
  // Routed expert of each pending token (top-1), known before the backbone runs because the
  // router reads only token ids; -1 = unknown / dense model.
  std::vector<int> pending_experts;
  int pending() const { return n_known - n_computed; }
};

// Per-step limits. Every plan respects all of them.
struct StepBudget {
  int max_tokens = 256;   // tokens in one step (decode + prefill)
  int max_seqs = 64;      // sequences in one step
  int max_experts = 0;    // distinct routed experts in one step; 0 = no limit
  int prefill_chunk = 0;  // most prompt tokens of one sequence per step; 0 = max_tokens
  int free_blocks = 0;    // KV blocks free before this step
  int block_size = 16;
  int aging_steps = 16;  // a request waiting this many steps is served before any other policy
  // Experts whose weights are resident in a budgeted expert cache (empty: no cache, or all
  // resident). The expert policy prefers them: a resident expert costs no load.
  std::vector<int> resident_experts;  // loaded (a load in flight counts as not resident)
  bool expert_cache = false;  // experts live in a budgeted cache: non-resident ones cost a load
  // The step cost model's current parameters (all zero: none); the expert policy prices its
  // candidate plans with them (see make_policy).
  StepCostParams cost;
};

struct ScheduledChunk {
  int64_t id;
  int n_tokens;  // from the request's n_computed onward
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;
  std::vector<int64_t> preempted;  // give back all blocks; recompute from scratch later
  int n_tokens = 0;
  std::vector<int> experts;  // distinct routed experts among the scheduled tokens, ascending
  int n_experts() const { return static_cast<int>(experts.size()); }
  StepShape shape;  // what the step cost model sees of it
};

// A scheduling policy. Implementations are stateless between calls (all state is in SeqInfo),
// so a plan can be simulated ahead (expert prefetch, Belady's lookahead). Thread-compatible.
class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string name() const = 0;
  // seqs: every live request with pending tokens or blocks; step: the current step number.
  virtual StepPlan schedule(const std::vector<SeqInfo>& seqs, const StepBudget& budget,
                            int64_t step) const = 0;
};

// "fcfs": running decodes first (arrival order), then chunked prefill in arrival order, under the
// token, sequence and block budgets; when a decode needs a block and none is free, the
// latest-arrived running request is preempted. "expert" (Read-ME): overdue requests first (as
// fcfs), then decode tokens grouped by their routed expert — experts resident in the expert cache
// first, then the expert with most waiting decodes — then prefill chunks, those whose next tokens
// use an expert already in the step (then a resident one) first;
// under max_experts a chunk ends before a token that would bring one expert too many.
// With a cost model (budget.cost) and every expert resident it is fcfs (reordering work that
// runs later anyway saves nothing; measured, grouping a step's prompts by expert cost latency),
// unless max_experts caps a step (then it groups as above). Under an expert cache it starts from
// fcfs's plan and takes a grouped one (the first k experts of that order; prefill chunks cut
// before any other expert) only when predicted over 1% cheaper for the same work: a candidate's
// predicted time plus what its waiting tokens cost later — the same compute and expert reads,
// and a load for a waiting expert not resident unless the step leaves a cache slot free for the
// I/O thread. So it serves the tokens whose experts are loaded while the others load.
// (Maximizing one step's tokens per second instead defers decodes whose expert read costs more
// than the step's average token: measured, that lost 9% to fcfs.)
// Aging bound: a request that has waited aging_steps steps is served before any expert group,
// longest-waiting first, and every step serves at least the longest-waiting one. So (given KV
// blocks) a request runs within aging_steps + N - 1 steps of its previous run, N = live requests;
// within aging_steps + ceil(N / max_seqs) when all are decoding, max_tokens >= max_seqs and the
// expert cap is off.
Result<std::unique_ptr<Policy>> make_policy(const std::string& name);

// What an expert cache should load while `plan` runs, most urgent first: the next experts (top-1)
// of the requests the plan leaves waiting, other than the plan's own, earliest deadline first —
// the step by which the aging bound makes the expert's longest-waiting request run, so a load
// that misses it stalls that step — then most waiting requests. Sets each one's (*next_use)[e] to
// that deadline: an unpinned resident expert whose waiting requests are due later gives its slot
// up to one due sooner (so the slot a grouped plan leaves free rotates), and keeps it otherwise.
// (Measured: ordering by waiting requests alone, with every waiting expert due next step, kept
// the free slot's expert resident until aging forced a demand load.)
std::vector<int> prefetch_order(const std::vector<SeqInfo>& seqs, const StepPlan& plan,
                                int aging_steps, std::vector<int64_t>* next_use);

// Blocks a request holding n_blocks needs to cache `tokens` positions.
int blocks_needed(int tokens, int block_size, int n_blocks);

}  // namespace rme
