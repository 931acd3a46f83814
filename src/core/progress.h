// core: the progress line of long jobs — a redrawn bar with rate and ETA on a terminal, else one
// line every few seconds (never one per step), so logs stay readable.
#pragma once

#include <cstdint>
#include <string>

namespace rme {

// Writes to stderr. Owned by the one thread that runs the job; not thread-safe. Never fails.
class Progress {
 public:
  // `total` units (tokens, steps...) of which `start` are already done (a resumed job): rate and
  // ETA count only what this run does.
  Progress(std::string label, int64_t total, std::string unit, int64_t start = 0);
  // `extra` (e.g. "loss 2.31") is shown after the counts.
  void update(int64_t done, const std::string& extra = "");
  void finish();
  double elapsed() const;

 private:
  std::string label_, unit_;
  int64_t total_, start_done_;
  double start_, last_draw_ = 0;
  int64_t last_done_ = -1;
  bool tty_;
};

std::string format_duration(double seconds);  // "1h02m03s", "4m05s", "6s"

}  // namespace rme
