// core: leveled logging to stderr (thin wrapper so the rest of rme does not depend on spdlog).
#pragma once

#include <string_view>

namespace rme {

enum class LogLevel { kDebug = 0, kInfo, kWarn, kError, kOff };

void set_log_level(LogLevel level);
LogLevel log_level();
void log_message(LogLevel level, std::string_view message);

inline void log_debug(std::string_view m) { log_message(LogLevel::kDebug, m); }
inline void log_info(std::string_view m) { log_message(LogLevel::kInfo, m); }
inline void log_warn(std::string_view m) { log_message(LogLevel::kWarn, m); }
inline void log_error(std::string_view m) { log_message(LogLevel::kError, m); }

}  // namespace rme
