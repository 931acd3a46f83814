// scheduler: the expert trace files — a serving run's step trace (`rme serve --trace-out`:
// step,expert,...) and a per-token routing trace (analyze-routing's routing.csv: seq,pos,expert)
// — written and read here, in one place, so writer and reader cannot drift apart.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace rme {

// One serving step (plain data): what it ran, how long it took, and what the step cost model
// predicted when it was planned.
struct StepRecord {
  int64_t step = 0;
  int n_tokens = 0, n_seqs = 0;
  std::vector<int> experts;  // the distinct routed experts the step ran
  double seconds = 0;
  double predicted = 0;  // the step cost model's prediction when the step was planned
  int loads = 0;         // experts the plan reads that were not resident when it was made
  double stall = 0;      // seconds the step waited for expert I/O
};

// The step trace: header step,expert,tokens,seqs,seconds,predicted,loads,stall and one row per
// (step, expert); a step without routed experts (a dense model) has no rows.
std::string step_trace_csv(const std::vector<StepRecord>& steps);
// Writes step_trace_csv atomically (temp file, fsync, rename).
Status write_step_trace(const std::string& path, const std::vector<StepRecord>& steps);

// The per-token routing trace (analyze-routing's routing.csv): header domain,seq,pos,token,expert,
// then one row per token, each sequence numbered in the order it was added. Not thread-safe.
class RoutingTraceWriter {
 public:
  // Token t of the sequence sits at position t and chose experts[t] (its first choice).
  void add(const std::string& domain, std::span<const int> tokens, std::span<const int> experts);
  const std::string& csv() const { return csv_; }
  // Writes csv() atomically.
  Status write(const std::string& path) const;

 private:
  std::string csv_ = "domain,seq,pos,token,expert\n";
  int n_seq_ = 0;
};

// Steps of a serving run: the distinct experts each step needed, in order.
struct ExpertTrace {
  int n_expert = 0;
  std::vector<std::vector<int>> steps;
  int64_t n_accesses() const;
};

// Reads either a step trace (columns step,expert — step_trace_csv) or a per-token routing trace
// (seq,pos,expert). A routing trace is turned into decode steps of `batch` sequences run
// together, a finished one replaced by the next (continuous batching), taken in file order or,
// with mixed, in an order shuffled by `seed` (a routing.csv lists each domain's sequences
// together, so file order decodes one domain at a time; a server sees every domain at once).
// n_expert 0 = one more than the largest id seen. Fails on a bad header, cell or expert id.
Result<ExpertTrace> parse_expert_trace(const std::string& csv, int batch, int n_expert,
                                       bool mixed = false, uint32_t seed = 1);

}  // namespace rme
