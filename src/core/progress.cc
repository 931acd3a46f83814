// core: the progress line.
#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "core/timer.h"

namespace rme {

Progress::Progress(std::string label, int64_t total, std::string unit, int64_t start)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      start_done_(start),
      start_(now_seconds()),
      tty_(isatty(STDERR_FILENO)) {}

double Progress::elapsed() const { return now_seconds() - start_; }

void Progress::update(int64_t done, const std::string& extra) {
  const double now = now_seconds();
  if (now - last_draw_ < 0.1 && done < total_) return;
  if (!tty_ && now - last_draw_ < 5 && done < total_) return;  // logs: a line every 5 s
  last_draw_ = now;
  last_done_ = done;
  const double el = now - start_;
  const double rate = el > 0 ? (done - start_done_) / el : 0;
  const double eta = rate > 0 ? (total_ - done) / rate : 0;
  const int width = 30;
  const int fill = total_ > 0 ? static_cast<int>(width * done / total_) : width;
  std::string bar(fill, '#');
  bar.append(width - fill, '.');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %s%s%s  %.1f %s/s  elapsed %s  ETA %s%s",
               tty_ ? "\r" : "", label_.c_str(), bar.c_str(), static_cast<long long>(done),
               static_cast<long long>(total_), unit_.c_str(), extra.empty() ? "" : " | ",
               extra.c_str(), rate, unit_.c_str(), format_duration(el).c_str(),
               format_duration(eta).c_str(), tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void Progress::finish() {
  if (last_done_ != total_) {
    last_draw_ = 0;  // force the final frame
    update(total_);
  }
  if (tty_) std::fprintf(stderr, "\n");
}

std::string format_duration(double s) {
  char buf[32];
  const int h = static_cast<int>(s / 3600), m = static_cast<int>(std::fmod(s, 3600) / 60);
  const int sec = static_cast<int>(std::fmod(s, 60));
  if (h > 0)
    std::snprintf(buf, sizeof(buf), "%dh%02dm%02ds", h, m, sec);
  else if (m > 0)
    std::snprintf(buf, sizeof(buf), "%dm%02ds", m, sec);
  else
    std::snprintf(buf, sizeof(buf), "%ds", sec);
  return buf;
}

}  // namespace rme
