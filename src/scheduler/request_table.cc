// scheduler: RequestTable — admission, the two applies (plan before a step, outputs after) and the
// stop rules.
#include "scheduler/request_table.h"

#include <algorithm>
#include <set>

namespace rme {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "?";
}

FinishReason StopRules::check(int token, int n_new) const {
  if (!ignore_eos && std::count(stop_ids.begin(), stop_ids.end(), token))
    return FinishReason::kStop;
  if (n_new >= max_new) return FinishReason::kLength;
  return FinishReason::kNone;
}

RequestTable::RequestTable(int n_block, int block_size, int route_k)
    : n_block_(n_block), block_size_(block_size), route_k_(route_k) {
  for (int b = n_block - 1; b >= 0; --b) free_.push_back(b);
}

int64_t RequestTable::add(NewRequest r, int64_t step) {
  Request q;
  q.id = next_id_++;
  q.arrival = r.arrival;
  q.waiting_since = step;
  q.n_prompt = static_cast<int>(r.prompt.size());
  q.tokens = std::move(r.prompt);
  q.experts = std::move(r.experts);
  q.weights = std::move(r.weights);
  q.stop = std::move(r.stop);
  const int64_t id = q.id;
  requests_.emplace(id, std::move(q));
  return id;
}

void RequestTable::release(Request& r) {
  for (int b : r.blocks) free_.push_back(b);
  r.blocks.clear();
  r.n_computed = 0;
}

void RequestTable::remove(int64_t id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  release(it->second);
  requests_.erase(it);
}

const Request* RequestTable::find(int64_t id) const {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : &it->second;
}

int RequestTable::n_running() const {
  int n = 0;
  for (const auto& [id, r] : requests_) n += !r.blocks.empty();
  return n;
}

std::vector<SeqInfo> RequestTable::infos() const {
  std::vector<SeqInfo> out;
  out.reserve(requests_.size());
  for (const auto& [id, r] : requests_) {
    SeqInfo i;
    i.id = id;
    i.arrival = r.arrival;
    i.n_computed = r.n_computed;
    i.n_known = static_cast<int>(r.tokens.size());
    i.n_blocks = static_cast<int>(r.blocks.size());
    i.waiting_since = r.waiting_since;
    i.pending_experts.reserve(i.pending());
    for (int t = r.n_computed; t < i.n_known; ++t)
      i.pending_experts.push_back(route_k_ ? r.experts[static_cast<size_t>(t) * route_k_] : -1);
    out.push_back(std::move(i));
  }
  return out;
}

std::vector<int> RequestTable::plan_experts(const StepPlan& plan) const {
  std::set<int> e;
  for (const auto& c : plan.chunks) {
    const Request* r = find(c.id);
    if (!r) continue;
    const int end = std::min(r->n_computed + c.n_tokens, static_cast<int>(r->tokens.size()));
    for (size_t i = size_t(r->n_computed) * route_k_; i < size_t(end) * route_k_; ++i)
      e.insert(r->experts[i]);
  }
  return {e.begin(), e.end()};
}

Result<std::vector<StepChunk>> RequestTable::apply(const StepPlan& plan, int64_t step) {
  // Check the whole plan first so a bad one changes nothing.
  int free = free_blocks();
  for (int64_t id : plan.preempted)
    if (const Request* r = find(id)) free += static_cast<int>(r->blocks.size());
  for (const auto& c : plan.chunks) {
    const Request* r = find(c.id);
    if (!r) continue;
    const bool preempted =
        std::find(plan.preempted.begin(), plan.preempted.end(), c.id) != plan.preempted.end();
    const int computed = preempted ? 0 : r->n_computed;
    const int held = preempted ? 0 : static_cast<int>(r->blocks.size());
    if (c.n_tokens <= 0 || computed + c.n_tokens > static_cast<int>(r->tokens.size()))
      return internal_error("request table: plan runs more tokens than request " +
                            std::to_string(c.id) + " has");
    free -= blocks_needed(computed + c.n_tokens, block_size_, held);
    if (free < 0) return internal_error("request table: plan needs more KV blocks than free");
  }
  for (int64_t id : plan.preempted) {
    auto it = requests_.find(id);
    if (it != requests_.end()) release(it->second);
  }
  std::vector<StepChunk> out;
  out.reserve(plan.chunks.size());
  for (const auto& c : plan.chunks) {
    auto it = requests_.find(c.id);
    if (it == requests_.end()) continue;
    Request& r = it->second;
    const int need =
        blocks_needed(r.n_computed + c.n_tokens, block_size_, static_cast<int>(r.blocks.size()));
    for (int b = 0; b < need; ++b) {
      r.blocks.push_back(free_.back());
      free_.pop_back();
    }
    out.push_back({c.id, r.n_computed, c.n_tokens,
                   r.n_computed + c.n_tokens == static_cast<int>(r.tokens.size())});
    r.n_computed += c.n_tokens;
    r.waiting_since = step;
  }
  return out;
}

void RequestTable::apply(std::span<TokenEvent> outputs) {
  for (TokenEvent& ev : outputs) {
    auto it = requests_.find(ev.id);
    if (it == requests_.end()) continue;
    Request& r = it->second;
    if (ev.finish == FinishReason::kError || ev.token < 0) {
      ev.finish = FinishReason::kError;
      if (ev.error.ok()) ev.error = internal_error("request table: an event without a token");
      remove(ev.id);
      continue;
    }
    ev.finish = r.stop.check(ev.token, r.n_generated() + 1);
    if (ev.finish != FinishReason::kStop && r.stop.watch && r.stop.watch->stops_after(ev)) {
      ev.finish = FinishReason::kStop;  // a stop string: the token is output
      remove(ev.id);
      continue;
    }
    if (ev.finish == FinishReason::kNone &&
        ev.experts.size() != static_cast<size_t>(route_k_)) {  // an executor bug
      ev.finish = FinishReason::kError;
      ev.error = internal_error("request table: a token without its routing");
    }
    if (ev.finish == FinishReason::kStop) ev.token = -1;  // the stop token is not output
    if (ev.finish != FinishReason::kNone) {
      remove(ev.id);
      continue;
    }
    r.tokens.push_back(ev.token);
    r.experts.insert(r.experts.end(), ev.experts.begin(), ev.experts.end());
    r.weights.insert(r.weights.end(), ev.weights.begin(), ev.weights.end());
  }
}

}  // namespace rme
