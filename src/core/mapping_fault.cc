// core: the registry of live file mappings and the SIGBUS handler that turns a fault on a
// truncated mapped file into a clean exit.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "core/file.h"

namespace rme {
namespace internal {

// Fixed slots the signal handler can read without locks or allocation; a mapping past the last
// slot is simply not named (its fault then keeps the default action).
struct MappingSlot {
  std::atomic<uintptr_t> begin{0}, end{0};
  char path[256] = {};
};
constexpr int kSlots = 512;
MappingSlot g_slots[kSlots];
std::mutex g_slots_mu;  // writers only

void register_mapping(const void* data, size_t size, const std::string& path) {
  if (data == nullptr || size == 0) return;
  std::lock_guard<std::mutex> lock(g_slots_mu);
  for (MappingSlot& s : g_slots) {
    if (s.begin.load(std::memory_order_relaxed) != 0) continue;
    const size_t n = std::min(path.size(), sizeof s.path - 1);
    std::memcpy(s.path, path.data(), n);
    s.path[n] = '\0';
    s.end.store(reinterpret_cast<uintptr_t>(data) + size, std::memory_order_relaxed);
    s.begin.store(reinterpret_cast<uintptr_t>(data), std::memory_order_release);
    return;
  }
}

void unregister_mapping(const void* data) {
  if (data == nullptr) return;
  std::lock_guard<std::mutex> lock(g_slots_mu);
  for (MappingSlot& s : g_slots)
    if (s.begin.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(data)) {
      s.begin.store(0, std::memory_order_release);
      s.end.store(0, std::memory_order_relaxed);
      return;
    }
}

}  // namespace internal

namespace {

void write_str(const char* s) { (void)!::write(STDERR_FILENO, s, std::strlen(s)); }

void on_sigbus(int sig, siginfo_t* info, void*) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (const internal::MappingSlot& s : internal::g_slots) {
    const uintptr_t b = s.begin.load(std::memory_order_acquire);
    if (b != 0 && addr >= b && addr < s.end.load(std::memory_order_relaxed)) {
      write_str("\nrme: error: ");
      write_str(s.path);
      write_str(
          ": the file shrank or was rewritten while it was being read (a model must not "
          "change while a command uses it); stopping\n");
      ::_exit(1);
    }
  }
  // Not a mapped file's fault: a bug. Die of the signal as before, with its core dump.
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

void exit_cleanly_on_truncated_mappings() {
  struct sigaction sa {};
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, nullptr);
}

}  // namespace rme
