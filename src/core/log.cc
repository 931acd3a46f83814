// core: logging backend (stderr, serialized by a mutex).
#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace rme {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kWarn};
std::mutex g_mu;
const char* level_tag(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      return "";
  }
  return "";
}
}  // namespace

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

void log_message(LogLevel level, std::string_view message) {
  if (level < g_level.load()) return;
  std::lock_guard<std::mutex> lock(g_mu);
  std::fprintf(stderr, "rme %s: %.*s\n", level_tag(level), static_cast<int>(message.size()),
               message.data());
}

}  // namespace rme
