// scheduler: which experts an expert cache keeps — slot bookkeeping and the lru / lfu / belady
// eviction rules, plus the offline optimum. Pure policy; engine/expert_store moves the bytes.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace rme {

enum class Eviction { kLru, kLfu, kBelady };
Result<Eviction> parse_eviction(const std::string& name);  // "lru" | "lfu" | "belady"
const char* eviction_name(Eviction e);

constexpr int64_t kNeverUsed = std::numeric_limits<int64_t>::max();

// Which of n_expert experts sit in which of `capacity` slots, and whom to evict. Belady evicts
// the expert whose next known use is farthest (unknown = never, ties by least recent use); LFU
// the least used so far (ties LRU); LRU the least recently used. Thread-compatible.
class ExpertCacheState {
 public:
  ExpertCacheState(int n_expert, int capacity, Eviction policy);
  int capacity() const { return static_cast<int>(slot_expert_.size()); }
  bool resident(int e) const { return expert_slot_[e] >= 0; }
  int slot_of(int e) const { return expert_slot_[e]; }
  int expert_in(int slot) const { return slot_expert_[slot]; }

  // Records a use of resident expert e at time now (a hit).
  void touch(int e, int64_t now);
  // Makes e resident at time now, evicting if every slot is taken. next_use[x] is the time of x's
  // next known use (kNeverUsed if none), read by belady only; pinned[x] experts stay. Returns the
  // slot, or -1 when every slot is pinned. *evicted gets the expert pushed out, or -1.
  int insert(int e, int64_t now, std::span<const int64_t> next_use, std::span<const char> pinned,
             int* evicted);
  // Frees e's slot (a load that failed must be retried, not served); no-op if not resident.
  void remove(int e);
  // Who insert() would evict now: -1 if a slot is free, -2 if every slot is pinned.
  int victim(std::span<const int64_t> next_use, std::span<const char> pinned) const;

 private:
  Eviction policy_;
  std::vector<int> expert_slot_, slot_expert_;
  std::vector<int64_t> last_use_, uses_;
};

// Misses of the offline optimum (Belady's MIN with the whole future known) on an access sequence.
int64_t optimal_misses(std::span<const int> accesses, int n_expert, int capacity);

}  // namespace rme
