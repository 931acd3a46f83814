// core: fixed-size thread pool running data-parallel loops; the caller's thread takes part.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace rme {

// A non-owning reference to a callable fn(begin, end, thread_index): unlike std::function it
// never allocates (a lambda's captures would otherwise go to the heap on every parallel_for,
// dozens of times per decoded token). Valid only while the referenced callable lives.
class ChunkFn {
 public:
  template <typename F>
  requires(!std::is_same_v<std::decay_t<F>, ChunkFn>)
      ChunkFn(const F& f)  // NOLINT(google-explicit-constructor): lambdas convert implicitly
      : obj_(&f), call_([](const void* o, int64_t b, int64_t e, int t) {
          (*static_cast<const F*>(o))(b, e, t);
        }) {}
  void operator()(int64_t b, int64_t e, int t) const { call_(obj_, b, e, t); }

 private:
  const void* obj_;
  void (*call_)(const void*, int64_t, int64_t, int);
};

// Owns n_threads-1 worker threads (the calling thread is worker 0). parallel_for is meant to be
// called from one thread at a time (the engine's step loop); concurrent calls are serialized.
// Work items must not throw. Workers spin briefly before sleeping so back-to-back ops in a
// forward pass do not pay a futex wake-up each.
class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }

  // Calls fn(begin, end, thread_index) on disjoint chunks covering [0, n). `grain` is the
  // smallest chunk worth sending to a thread.
  void parallel_for(int64_t n, int64_t grain, ChunkFn fn);

  // Process-wide pool sized by set_default_threads (or hardware concurrency).
  static ThreadPool& global();
  static void set_default_threads(int n_threads);

 private:
  void worker_loop(int index);
  void run_chunks(int thread_index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serializes parallel_for callers
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_cv_;
  uint64_t generation_ = 0;
  bool stop_ = false;

  // Current job (valid while a generation is running).
  const ChunkFn* job_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 1;
  std::atomic<int64_t> next_{0};
  std::atomic<int> active_{0};
  std::atomic<uint64_t> published_{0};
};

}  // namespace rme
