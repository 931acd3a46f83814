// engine: ExpertStore, an expert-weight cache under a byte budget. Expert weights stay in the
// checkpoint file; resident copies live in fixed slots, filled by pread on an I/O thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "model/weights.h"
#include "scheduler/cache_policy.h"

namespace rme {

struct ExpertStoreOptions {
  int64_t budget_bytes = 0;  // resident expert bytes at most (slots = budget / expert bytes)
  Eviction eviction = Eviction::kBelady;
  bool direct_io = false;  // O_DIRECT: measure the disk, not the page cache
};

struct ExpertStoreStats {
  int64_t hits = 0, misses = 0;  // per expert use in a step
  int64_t prefetched = 0;        // loads started ahead of need
  int64_t prefetch_hits = 0;     // uses served by a prefetched load
  int64_t bytes_read = 0;
  double stall_seconds = 0;  // time acquire() waited for I/O
  double hit_rate() const { return hits + misses ? double(hits) / (hits + misses) : 0; }
};

// Owns the slot buffers, the file descriptor and one I/O thread. Which expert sits where is an
// ExpertCacheState (scheduler/), so the policy is the same one `rme cache-sim` replays. acquire()
// and prefetch() are called from one serving thread; stats() from any. Fails (Status) when the
// model's experts are not in one file, the budget holds fewer experts than a step needs, or a
// read fails. open() hashes every expert's bytes; each load checks its length and hash, so a
// checkpoint truncated or rewritten under a running server fails the steps that need a changed
// expert (never computes with wrong weights), and the failed expert is dropped from the cache,
// so service resumes once the file is whole again.
class ExpertStore {
 public:
  static Result<std::unique_ptr<ExpertStore>> open(const Model& model,
                                                   const ExpertStoreOptions& options);
  ~ExpertStore();

  int capacity() const { return cache_.capacity(); }
  int64_t expert_bytes() const { return slot_bytes_; }

  // Makes `experts` resident (they stay until the next acquire), waiting for any I/O they need,
  // and returns the table for Forward::set_expert_table. next_use[e]: the step of e's next known
  // use (kNeverUsed if none; belady's input).
  Result<std::vector<const ExpertWeights*>> acquire(std::span<const int> experts,
                                                    std::span<const int64_t> next_use, int64_t now);
  // Starts loading experts needed soon into slots not pinned by the last acquire.
  void prefetch(std::span<const int> experts, std::span<const int64_t> next_use, int64_t now);
  ExpertStoreStats stats() const;
  std::vector<int> ready() const;  // experts in a slot whose load has finished

 private:
  ExpertStore() = default;
  struct Slot;
  void io_loop();
  void start_load(int expert, int slot, bool urgent);
  Status wait_ready(int slot);
  // Reads expert's bytes into dst (slot-sized); check=false records the hash, true verifies it.
  Status read_expert(int expert, uint8_t* dst, bool check);

  const Model* model_ = nullptr;
  int fd_ = -1;
  int64_t slot_bytes_ = 0;
  std::vector<uint64_t> offset_;           // expert -> file offset (page aligned)
  std::vector<int64_t> need_;              // expert -> bytes from offset_ that hold weights
  std::vector<uint64_t> hash_;             // expert -> hash_bytes of those bytes at open()
  std::vector<std::vector<int64_t>> rel_;  // expert -> per-layer gate/up/down offsets
  std::vector<std::unique_ptr<Slot>> slots_;
  ExpertCacheState cache_{0, 0, Eviction::kLru};
  std::vector<char> pinned_;
  std::vector<char> prefetched_;  // expert was loaded by prefetch, not yet used

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> queue_;  // slots to fill
  bool stop_ = false;
  std::thread io_;
  ExpertStoreStats stats_;
};

}  // namespace rme
