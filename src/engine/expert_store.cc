// engine: ExpertStore — slots, pread/O_DIRECT loads on an I/O thread, pinning and prefetch.
#include "engine/expert_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/hash.h"
#include "core/timer.h"
#include "formats/moe_meta.h"

namespace rme {

namespace {
constexpr int64_t kAlign = 4096;  // O_DIRECT needs aligned offsets, lengths and buffers
int64_t align_up(int64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }
}  // namespace

struct ExpertStore::Slot {
  uint8_t* data = nullptr;
  int expert = -1;
  bool ready = false;
  Status status;
  std::vector<ExpertWeights> weights;  // [n_layer], pointing into data
  ~Slot() { std::free(data); }
};

Result<std::unique_ptr<ExpertStore>> ExpertStore::open(const Model& model,
                                                       const ExpertStoreOptions& o) {
  const int E = model.moe.n_expert;
  if (E == 0) return invalid_argument("expert cache: the model is dense");
  RME_ASSIGN_OR_RETURN(std::vector<ExpertRange> ranges, expert_ranges(model));
  std::unique_ptr<ExpertStore> s(new ExpertStore());
  s->model_ = &model;
  const MappedFile* file = nullptr;
  int64_t span = 0;
  s->offset_.resize(E);
  s->need_.assign(E, 0);
  s->hash_.assign(E, 0);
  s->rel_.resize(E);
  for (int e = 0; e < E; ++e) {
    const ExpertRange& r = ranges[e];
    if (r.file == nullptr) continue;
    if (file != nullptr && r.file != file)
      return invalid_argument(model.source + ": experts spread over several files");
    file = r.file;
    const uint64_t start = r.offset / kAlign * kAlign;
    s->offset_[e] = start;
    s->need_[e] = static_cast<int64_t>(r.offset + r.bytes - start);
    span = std::max(span, align_up(s->need_[e]));
    for (const LayerWeights& L : model.weights.layers)
      for (const MatView* v : {&L.experts[e].gate, &L.experts[e].up, &L.experts[e].down})
        s->rel_[e].push_back(v->data ? static_cast<const uint8_t*>(v->data) - file->data() -
                                           static_cast<int64_t>(start)
                                     : -1);
  }
  if (file == nullptr) return invalid_argument(model.source + ": experts hold no weights");
  s->slot_bytes_ = span;
  const int capacity = static_cast<int>(std::min<int64_t>(E, o.budget_bytes / span));
  if (capacity < 1)
    return invalid_argument("expert cache: a budget of " + std::to_string(o.budget_bytes >> 20) +
                            " MiB holds no expert (" + std::to_string(span >> 20) + " MiB each)");
  s->fd_ = ::open(file->path().c_str(), O_RDONLY | O_CLOEXEC | (o.direct_io ? O_DIRECT : 0));
  if (s->fd_ < 0)
    return io_error(file->path() + ": open" + (o.direct_io ? " with O_DIRECT" : "") + ": " +
                    std::strerror(errno));
  // The reference hashes, read through the descriptor (not the mapping: no SIGBUS if the file
  // changes meanwhile). One pass over the experts' bytes at startup.
  {
    std::unique_ptr<uint8_t, decltype(&std::free)> buf(
        static_cast<uint8_t*>(std::aligned_alloc(kAlign, span)), &std::free);
    if (buf == nullptr) return resource_exhausted("expert cache: out of memory");
    for (int e = 0; e < E; ++e)
      if (s->need_[e] > 0) RME_RETURN_IF_ERROR(s->read_expert(e, buf.get(), /*check=*/false));
  }
  s->cache_ = ExpertCacheState(E, capacity, o.eviction);
  s->pinned_.assign(E, 0);
  s->prefetched_.assign(E, 0);
  for (int i = 0; i < capacity; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->data = static_cast<uint8_t*>(std::aligned_alloc(kAlign, span));
    if (slot->data == nullptr) return resource_exhausted("expert cache: out of memory");
    s->slots_.push_back(std::move(slot));
  }
  s->io_ = std::thread([p = s.get()] { p->io_loop(); });
  return s;
}

ExpertStore::~ExpertStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (io_.joinable()) io_.join();
  if (fd_ >= 0) ::close(fd_);
}

Status ExpertStore::read_expert(int expert, uint8_t* dst, bool check) {
  // An O_DIRECT descriptor needs aligned lengths: whole pages are read into the slot-sized,
  // page-aligned dst (the file may end sooner); the hash covers only need_ bytes.
  const int64_t need = need_[expert];
  int64_t done = 0;
  const std::string what = model_->source + ": expert " + std::to_string(expert);
  while (done < need) {
    const int64_t want = align_up(need) - done;
    const ssize_t n = ::pread(fd_, dst + done, static_cast<size_t>(want),
                              static_cast<off_t>(offset_[expert] + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error(what + ": read failed: " + std::strerror(errno));
    if (n == 0) break;
    done += n;
  }
  if (check) {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.bytes_read += done;
  }
  if (done < need)
    return io_error(what + ": short read (" + std::to_string(done) + " of " + std::to_string(need) +
                    " bytes): the checkpoint is shorter than when it was opened (truncated or "
                    "being replaced)");
  const uint64_t h = hash_bytes(dst, static_cast<size_t>(need));
  if (!check) {
    hash_[expert] = h;
  } else if (h != hash_[expert]) {
    return corrupt(what + ": its bytes changed on disk since the checkpoint was opened");
  }
  return Status::Ok();
}

void ExpertStore::io_loop() {
  for (;;) {
    int slot_index;
    int expert;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      slot_index = queue_.front();
      queue_.pop_front();
      expert = slots_[slot_index]->expert;
    }
    Slot& slot = *slots_[slot_index];
    const Status st = read_expert(expert, slot.data, /*check=*/true);
    {
      std::lock_guard<std::mutex> lock(mu_);
      slot.status = st;
      slot.ready = true;
    }
    cv_.notify_all();
  }
}

void ExpertStore::start_load(int expert, int slot_index, bool urgent) {
  Slot& slot = *slots_[slot_index];
  if (slot.expert >= 0) (void)wait_ready(slot_index);  // never retarget a slot mid-read
  const auto& rel = rel_[expert];
  slot.weights.resize(model_->weights.layers.size());
  size_t i = 0;
  for (size_t l = 0; l < slot.weights.size(); ++l) {
    const ExpertWeights& src = model_->weights.layers[l].experts[expert];
    ExpertWeights& dst = slot.weights[l];
    dst = src;
    for (MatView* v : {&dst.gate, &dst.up, &dst.down}) {
      if (rel[i] >= 0) v->data = slot.data + rel[i];
      ++i;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  slot.expert = expert;
  slot.ready = false;
  // A step waits for its own loads; prefetches use the disk when no step is waiting on it.
  if (urgent) {
    queue_.push_front(slot_index);
  } else {
    queue_.push_back(slot_index);
  }
  cv_.notify_all();
}

Status ExpertStore::wait_ready(int slot_index) {
  Slot& slot = *slots_[slot_index];
  std::unique_lock<std::mutex> lock(mu_);
  if (!slot.ready) {
    const double t0 = now_seconds();
    cv_.wait(lock, [&] { return slot.ready; });
    stats_.stall_seconds += now_seconds() - t0;
  }
  return slot.status;
}

Result<std::vector<const ExpertWeights*>> ExpertStore::acquire(std::span<const int> experts,
                                                               std::span<const int64_t> next_use,
                                                               int64_t now) {
  const int E = model_->moe.n_expert;
  if (static_cast<int>(experts.size()) > capacity())
    return resource_exhausted("expert cache: a step needs " + std::to_string(experts.size()) +
                              " experts, the budget holds " + std::to_string(capacity()));
  std::fill(pinned_.begin(), pinned_.end(), 0);
  for (int e : experts) pinned_[e] = 1;
  std::vector<const ExpertWeights*> table(E, nullptr);
  for (int e : experts) {
    if (cache_.resident(e)) {
      cache_.touch(e, now);
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.hits;
      if (prefetched_[e]) ++stats_.prefetch_hits;
    } else {
      int evicted;
      const int slot = cache_.insert(e, now, next_use, pinned_, &evicted);
      if (slot < 0) return internal_error("expert cache: no unpinned slot");
      if (evicted >= 0) prefetched_[evicted] = 0;
      start_load(e, slot, /*urgent=*/true);
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.misses;
    }
    prefetched_[e] = 0;
  }
  Status failed;
  for (int e : experts) {
    const int slot = cache_.slot_of(e);
    Status st = wait_ready(slot);
    if (!st.ok()) {  // drop it so a later step reads the file again
      cache_.remove(e);
      slots_[slot]->expert = -1;
      if (failed.ok()) failed = st;
      continue;
    }
    table[e] = slots_[slot]->weights.data();
  }
  if (!failed.ok()) return failed;
  return table;
}

void ExpertStore::prefetch(std::span<const int> experts, std::span<const int64_t> next_use,
                           int64_t now) {
  for (int e : experts) {
    if (cache_.resident(e)) continue;
    // Only evict something needed later than e (or never): never push out a sooner need.
    const int v = cache_.victim(next_use, pinned_);
    if (v == -2 || (v >= 0 && !next_use.empty() && next_use[v] <= next_use[e])) return;
    int evicted;
    const int slot = cache_.insert(e, now, next_use, pinned_, &evicted);
    if (slot < 0) return;
    if (evicted >= 0) prefetched_[evicted] = 0;
    prefetched_[e] = 1;
    start_load(e, slot, /*urgent=*/false);
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.prefetched;
  }
}

std::vector<int> ExpertStore::ready() const {
  std::vector<int> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (int s = 0; s < cache_.capacity(); ++s)
    if (cache_.expert_in(s) >= 0 && slots_[s]->ready && slots_[s]->status.ok())
      out.push_back(cache_.expert_in(s));
  return out;
}

ExpertStoreStats ExpertStore::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace rme
