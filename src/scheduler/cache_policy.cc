// scheduler: expert cache slot bookkeeping, eviction rules and the offline optimum.
#include "scheduler/cache_policy.h"

#include <algorithm>

#include "core/check.h"

namespace rme {

Result<Eviction> parse_eviction(const std::string& name) {
  if (name == "lru") return Eviction::kLru;
  if (name == "lfu") return Eviction::kLfu;
  if (name == "belady") return Eviction::kBelady;
  return invalid_argument("expert cache: unknown eviction policy '" + name +
                          "' (lru | lfu | belady)");
}

const char* eviction_name(Eviction e) {
  switch (e) {
    case Eviction::kLru:
      return "lru";
    case Eviction::kLfu:
      return "lfu";
    case Eviction::kBelady:
      return "belady";
  }
  return "?";
}

ExpertCacheState::ExpertCacheState(int n_expert, int capacity, Eviction policy)
    : policy_(policy),
      expert_slot_(n_expert, -1),
      slot_expert_(std::max(0, capacity), -1),
      last_use_(n_expert, -1),
      uses_(n_expert, 0) {}

void ExpertCacheState::touch(int e, int64_t now) {
  last_use_[e] = now;
  ++uses_[e];
}

void ExpertCacheState::remove(int e) {
  if (!resident(e)) return;
  slot_expert_[expert_slot_[e]] = -1;
  expert_slot_[e] = -1;
}

int ExpertCacheState::victim(std::span<const int64_t> next_use,
                             std::span<const char> pinned) const {
  for (int s = 0; s < capacity(); ++s)
    if (slot_expert_[s] < 0) return -1;
  auto better = [&](int a, int b) {  // true when a is a better victim than b
    if (policy_ == Eviction::kBelady) {
      const int64_t na = next_use.empty() ? kNeverUsed : next_use[a];
      const int64_t nb = next_use.empty() ? kNeverUsed : next_use[b];
      if (na != nb) return na > nb;
    } else if (policy_ == Eviction::kLfu && uses_[a] != uses_[b]) {
      return uses_[a] < uses_[b];
    }
    return last_use_[a] < last_use_[b];
  };
  int v = -2;
  for (int s = 0; s < capacity(); ++s) {
    const int x = slot_expert_[s];
    if (!pinned.empty() && pinned[x]) continue;
    if (v < 0 || better(x, v)) v = x;
  }
  return v;
}

int ExpertCacheState::insert(int e, int64_t now, std::span<const int64_t> next_use,
                             std::span<const char> pinned, int* evicted) {
  *evicted = -1;
  RME_CHECK(!resident(e));
  const int v = victim(next_use, pinned);
  if (v == -2) return -1;
  int slot = -1;
  if (v == -1) {
    for (int s = 0; s < capacity() && slot < 0; ++s)
      if (slot_expert_[s] < 0) slot = s;
  } else {
    slot = expert_slot_[v];
    expert_slot_[v] = -1;
    *evicted = v;
  }
  slot_expert_[slot] = e;
  expert_slot_[e] = slot;
  touch(e, now);
  return slot;
}

int64_t optimal_misses(std::span<const int> accesses, int n_expert, int capacity) {
  const int64_t n = static_cast<int64_t>(accesses.size());
  // next[i] = index of the next access to accesses[i] after i.
  std::vector<int64_t> next(n), seen(n_expert, kNeverUsed);
  for (int64_t i = n - 1; i >= 0; --i) {
    next[i] = seen[accesses[i]];
    seen[accesses[i]] = i;
  }
  std::vector<int64_t> next_use(n_expert, kNeverUsed);
  std::vector<char> in(n_expert, 0);
  int size = 0;
  int64_t misses = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int e = accesses[i];
    if (!in[e]) {
      ++misses;
      if (size == capacity) {
        int victim = -1;
        for (int x = 0; x < n_expert; ++x)
          if (in[x] && (victim < 0 || next_use[x] > next_use[victim])) victim = x;
        in[victim] = 0;
        --size;
      }
      if (capacity > 0) {
        in[e] = 1;
        ++size;
      }
    }
    next_use[e] = next[i];
  }
  return misses;
}

}  // namespace rme
