// scheduler: the fcfs and expert (Read-ME) policies and the budget bookkeeping they share.
#include "scheduler/schedule.h"

#include <algorithm>
#include <map>
#include <set>

namespace rme {

int blocks_needed(int tokens, int block_size, int n_blocks) {
  const int total = (tokens + block_size - 1) / block_size;
  return std::max(0, total - n_blocks);
}

namespace {

// Builds one plan under a budget. Requests may preempt running requests that arrived later (and
// are not in the plan), so the oldest request can always progress and blocks never deadlock.
class PlanBuilder {
 public:
  PlanBuilder(const std::vector<SeqInfo>& seqs, const StepBudget& b) : seqs_(seqs), b_(b) {
    free_ = b.free_blocks;
    taken_.assign(seqs.size(), false);
    gone_.assign(seqs.size(), false);
    order_.resize(seqs.size());
    for (size_t i = 0; i < seqs.size(); ++i) order_[i] = static_cast<int>(i);
    std::sort(order_.begin(), order_.end(), [&](int a, int c) { return earlier(a, c); });
  }

  const std::vector<int>& order() const { return order_; }
  bool available(int i) const { return !taken_[i] && !gone_[i] && seqs_[i].pending() > 0; }
  int chunk_limit(int i) const {
    const int cap = b_.prefill_chunk > 0 ? b_.prefill_chunk : b_.max_tokens;
    return std::min(seqs_[i].pending(), std::max(1, cap));
  }
  bool has_expert(int e) const { return e < 0 || experts_.count(e) > 0; }
  bool full() const {
    return plan_.n_tokens >= b_.max_tokens || static_cast<int>(plan_.chunks.size()) >= b_.max_seqs;
  }

  // Adds up to n tokens of request i; under max_experts the chunk ends before a token that would
  // bring one expert too many. Returns the tokens added (0 when nothing fits).
  int add(int i, int n) {
    if (!available(i) || full()) return 0;
    const SeqInfo& s = seqs_[i];
    n = std::min({n, s.pending(), b_.max_tokens - plan_.n_tokens});
    // Experts: cut where the cap (or the policy) says so.
    std::set<int> added;
    int m = 0;
    for (; m < n; ++m) {
      const int e = m < static_cast<int>(s.pending_experts.size()) ? s.pending_experts[m] : -1;
      if (e < 0 || experts_.count(e) || added.count(e)) continue;
      const bool cap =
          b_.max_experts > 0 && static_cast<int>(experts_.size() + added.size()) >= b_.max_experts;
      if (cap) break;
      added.insert(e);
    }
    n = m;
    if (n <= 0) return 0;
    // Blocks: preempt later arrivals if needed; else shrink the chunk to what fits.
    int need = blocks_needed(s.n_computed + n, b_.block_size, s.n_blocks);
    while (need > free_ && preempt_one_after(i)) {
    }
    if (need > free_) {
      const int can = (s.n_blocks + free_) * b_.block_size - s.n_computed;
      n = std::min(n, can);
      if (n <= 0) return 0;
      need = blocks_needed(s.n_computed + n, b_.block_size, s.n_blocks);
    }
    free_ -= need;
    taken_[i] = true;
    for (int m2 = 0; m2 < n && m2 < static_cast<int>(s.pending_experts.size()); ++m2)
      if (s.pending_experts[m2] >= 0) experts_.insert(s.pending_experts[m2]);
    plan_.chunks.push_back({s.id, n});
    plan_.n_tokens += n;
    return n;
  }

  StepPlan finish() {
    // No progress while requests wait and blocks are held by partial prefills: free the newest.
    if (plan_.chunks.empty()) {
      bool pending = false;
      for (size_t i = 0; i < seqs_.size(); ++i) pending |= available(static_cast<int>(i));
      if (pending) {
        for (auto it = order_.rbegin(); it != order_.rend(); ++it)
          if (!gone_[*it] && seqs_[*it].n_blocks > 0 && *it != order_.front()) {
            gone_[*it] = true;
            plan_.preempted.push_back(seqs_[*it].id);
            break;
          }
      }
    }
    plan_.n_experts = static_cast<int>(experts_.size());
    return std::move(plan_);
  }

 private:
  bool earlier(int a, int c) const {
    return seqs_[a].arrival != seqs_[c].arrival ? seqs_[a].arrival < seqs_[c].arrival
                                                : seqs_[a].id < seqs_[c].id;
  }
  // Frees the blocks of the latest-arrived running request that arrived after i and is not in
  // the plan.
  bool preempt_one_after(int i) {
    for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
      const int j = *it;
      if (j == i || !earlier(i, j)) return false;
      if (taken_[j] || gone_[j] || seqs_[j].n_blocks == 0) continue;
      gone_[j] = true;
      free_ += seqs_[j].n_blocks;
      plan_.preempted.push_back(seqs_[j].id);
      return true;
    }
    return false;
  }

  const std::vector<SeqInfo>& seqs_;
  const StepBudget& b_;
  int free_;
  std::vector<bool> taken_, gone_;
  std::vector<int> order_;
  std::set<int> experts_;
  StepPlan plan_;
};

bool is_decode(const SeqInfo& s) { return s.n_blocks > 0 && s.pending() == 1; }

class FcfsPolicy : public Policy {
 public:
  std::string name() const override { return "fcfs"; }
  StepPlan schedule(const std::vector<SeqInfo>& seqs, const StepBudget& b, int64_t) const override {
    PlanBuilder p(seqs, b);
    for (int i : p.order())
      if (is_decode(seqs[i])) p.add(i, 1);
    for (int i : p.order()) p.add(i, p.chunk_limit(i));
    return p.finish();
  }
};

class ExpertPolicy : public Policy {
 public:
  std::string name() const override { return "expert"; }
  StepPlan schedule(const std::vector<SeqInfo>& seqs, const StepBudget& b,
                    int64_t step) const override {
    PlanBuilder p(seqs, b);
    // Aging: overdue requests first, longest-waiting first, as fcfs would take them.
    std::vector<int> overdue;
    for (int i : p.order())
      if (step - seqs[i].waiting_since >= b.aging_steps) overdue.push_back(i);
    std::stable_sort(overdue.begin(), overdue.end(), [&](int a, int c) {
      return seqs[a].waiting_since < seqs[c].waiting_since;
    });
    for (int i : overdue) p.add(i, p.chunk_limit(i));
    auto first_expert = [&](int i) {
      return seqs[i].pending_experts.empty() ? -1 : seqs[i].pending_experts[0];
    };
    // Decodes, grouped: the expert with most waiting decode tokens first.
    std::map<int, int> count;
    for (int i : p.order())
      if (p.available(i) && is_decode(seqs[i])) ++count[first_expert(i)];
    auto resident = [&](int e) {
      return e < 0 || std::find(b.resident_experts.begin(), b.resident_experts.end(), e) !=
                          b.resident_experts.end();
    };
    std::vector<std::pair<int, int>> groups(count.begin(), count.end());  // (expert, tokens)
    std::stable_sort(groups.begin(), groups.end(), [&](const auto& a, const auto& c) {
      if (resident(a.first) != resident(c.first)) return resident(a.first);
      return a.second > c.second;
    });
    for (const auto& [e, n] : groups)
      for (int i : p.order())
        if (p.available(i) && is_decode(seqs[i]) && first_expert(i) == e) p.add(i, 1);
    // Prefill: prompts whose next tokens use an expert the step already reads come first, then
    // those on a cache-resident expert; the expert cap (inside add) ends a chunk before a token
    // that would exceed it.
    for (int pass = 0; pass < 3; ++pass)
      for (int i : p.order()) {
        const int e = first_expert(i);
        const int rank = p.has_expert(e) ? 0 : resident(e) ? 1 : 2;
        if (p.available(i) && rank == pass) p.add(i, p.chunk_limit(i));
      }
    return p.finish();
  }
};

}  // namespace

Result<std::unique_ptr<Policy>> make_policy(const std::string& name) {
  if (name == "fcfs") return std::unique_ptr<Policy>(new FcfsPolicy());
  if (name == "expert") return std::unique_ptr<Policy>(new ExpertPolicy());
  return invalid_argument("scheduler: unknown policy '" + name + "' (fcfs | expert)");
}

}  // namespace rme
