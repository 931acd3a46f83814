// scheduler: RequestTable, the one home of serving state — each live request's tokens, routed
// experts, KV block list and stop rules — changed only by apply(plan) and apply(outputs).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "core/status.h"
#include "scheduler/schedule.h"

namespace rme {

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", ...

class TokenWatcher;

// When a request ends. One rule for every caller: a stop token ends it and is not output; a
// token the watcher stops after (a stop string) is output and ends it with kStop, outranking the
// length rule; the max_new-th generated token is output and ends it.
struct StopRules {
  int max_new = 16;
  bool ignore_eos = false;    // only max_new ends it (benchmarks)
  std::vector<int> stop_ids;  // end-of-sequence ids
  // Rules the ids cannot tell (stop strings over the text); shared by the table's copies, but
  // only RequestTable::apply(outputs) calls it.
  std::shared_ptr<TokenWatcher> watch;
  // Why sampling `token` as the n_new-th generated token (1-based) ends the request by the id and
  // length rules (pure: the executor asks it to decide whether to route a sampled token).
  FinishReason check(int token, int n_new) const;
};

// A request as admitted: its prompt with each token's routed experts, already validated.
struct NewRequest {
  std::vector<int> prompt;
  std::vector<int> experts;    // [prompt, k] routed experts (top-k order); empty for a dense model
  std::vector<float> weights;  // their mixing weights, same shape
  StopRules stop;
  int64_t arrival = 0;  // arrival order (smaller = earlier)
};

// One live request.
struct Request {
  int64_t id = 0, arrival = 0;
  int64_t waiting_since = 0;  // step at which it last ran (or arrived)
  std::vector<int> tokens;    // prompt, then generated
  std::vector<int> experts;   // [tokens, k]
  std::vector<float> weights;
  std::vector<int> blocks;  // KV block ids holding positions [0, n_computed)
  int n_prompt = 0, n_computed = 0;
  StopRules stop;
  int n_generated() const { return static_cast<int>(tokens.size()) - n_prompt; }
};

// One chunk of a step, as the executor runs it: tokens [pos, pos + n_tokens) of request id, whose
// KV blocks already cover them; want_logits when the chunk ends the request's known tokens.
struct StepChunk {
  int64_t id;
  int pos, n_tokens;
  bool want_logits;
};

// What a step produced for one request. The executor fills token (-1: none, with finish kError and
// error), logprob/top, and the routing of the token when the stop rules let the request go on;
// apply(outputs) sets finish by the stop rules.
struct TokenEvent {
  int64_t id = 0;
  int token = -1;
  FinishReason finish = FinishReason::kNone;
  // Requested log-probabilities: log p(token) over the biased, penalized logits (before
  // temperature and truncation), and the most likely tokens with theirs.
  float logprob = 0.0f;
  std::vector<std::pair<int, float>> top;
  Status error;                // why, when finish is kError
  std::vector<int> experts;    // [k] routed experts of token (MoE, request going on)
  std::vector<float> weights;  // [k]
};

// Sees each generated token of one request once, in order, on the thread that applies outputs,
// after the id rules let it be output; true: the request ends after this token (kStop). It may
// keep what it computes (server's CompletionText keeps the released text, so each token is
// detokenized once). Implementations say their own thread-safety.
class TokenWatcher {
 public:
  virtual ~TokenWatcher() = default;
  virtual bool stops_after(const TokenEvent& event) = 0;
};

// Owns every live request's state and the KV block free list (block ids only; the memory is the
// executor's). The serving loop, the lookahead's simulation (a copy) and the tests change it the
// same way: apply(plan) before a step runs, apply(outputs) after. Not thread-safe; copyable.
// A plan the table cannot honour (more tokens than known, more blocks than free) is a policy bug
// and fails apply with an internal error, changing nothing.
class RequestTable {
 public:
  // route_k: routed experts recorded per token (0 for a dense model).
  RequestTable(int n_block, int block_size, int route_k);

  int64_t add(NewRequest request, int64_t step);  // returns the new id
  void remove(int64_t id);                        // frees its blocks; unknown ids are ignored
  const Request* find(int64_t id) const;
  size_t size() const { return requests_.size(); }
  int n_running() const;  // requests holding KV blocks
  int free_blocks() const { return static_cast<int>(free_.size()); }
  int n_block() const { return n_block_; }
  int block_size() const { return block_size_; }
  int route_k() const { return route_k_; }
  const std::map<int64_t, Request>& requests() const { return requests_; }

  // What the scheduler sees, one entry per live request.
  std::vector<SeqInfo> infos() const;
  // Distinct routed experts the plan's tokens use (all top-k choices), ascending.
  std::vector<int> plan_experts(const StepPlan& plan) const;

  // Before the step runs: preempted requests give their blocks back and recompute from scratch
  // later; each chunk's tokens take the blocks they need and count as computed; a request that
  // runs restarts its aging clock. Chunks of unknown (cancelled) requests are dropped.
  Result<std::vector<StepChunk>> apply(const StepPlan& plan, int64_t step);
  // After the step: sets each event's finish by the stop rules (a stop token becomes token -1;
  // the watcher, when there is one, sees every other token),
  // appends the tokens of requests that go on with their routing, and removes finished requests.
  void apply(std::span<TokenEvent> outputs);

 private:
  void release(Request& r);

  int n_block_, block_size_, route_k_;
  std::vector<int> free_;  // free block ids
  std::map<int64_t, Request> requests_;
  int64_t next_id_ = 0;
};

}  // namespace rme
