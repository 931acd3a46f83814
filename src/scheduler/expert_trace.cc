// scheduler: the expert trace files — the step trace a serving run writes and the routing
// trace analyze-routing writes — read back for `rme cache-sim`.
#include "scheduler/expert_trace.h"

#include <algorithm>
#include <map>
#include <random>
#include <sstream>

#include "core/check.h"
#include "core/file.h"

namespace rme {

int64_t ExpertTrace::n_accesses() const {
  int64_t n = 0;
  for (const auto& s : steps) n += static_cast<int64_t>(s.size());
  return n;
}

namespace {

std::vector<std::string> split(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();  // CSV written on Windows (CRLF)
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) out.push_back(cell);
  return out;
}

Result<int64_t> to_int(const std::string& s, int line) {
  try {
    size_t used = 0;
    const long long v = std::stoll(s, &used);
    if (used == s.size()) return static_cast<int64_t>(v);
  } catch (...) {
  }
  return invalid_argument("trace line " + std::to_string(line) + ": '" + s + "' is not a number");
}

}  // namespace

Result<ExpertTrace> parse_expert_trace(const std::string& csv, int batch, int n_expert, bool mixed,
                                       uint32_t seed) {
  std::stringstream in(csv);
  std::string line;
  if (!std::getline(in, line)) return invalid_argument("trace: empty");
  const auto head = split(line);
  auto col = [&](const std::string& name) {
    auto it = std::find(head.begin(), head.end(), name);
    return it == head.end() ? -1 : static_cast<int>(it - head.begin());
  };
  const int c_step = col("step"), c_seq = col("seq"), c_expert = col("expert");
  if (c_expert < 0 || (c_step < 0 && c_seq < 0))
    return invalid_argument("trace: need columns step,expert or seq,pos,expert; got '" + line +
                            "'");
  std::map<int64_t, std::vector<int>> by_key;  // step -> experts, or seq -> experts by position
  std::vector<int64_t> seq_order;
  int max_e = -1, n_line = 1;
  while (std::getline(in, line)) {
    ++n_line;
    if (line.empty()) continue;
    const auto cells = split(line);
    const int key_col = c_step >= 0 ? c_step : c_seq;
    if (static_cast<int>(cells.size()) <= std::max(key_col, c_expert))
      return invalid_argument("trace line " + std::to_string(n_line) + ": too few columns");
    RME_ASSIGN_OR_RETURN(int64_t key, to_int(cells[key_col], n_line));
    RME_ASSIGN_OR_RETURN(int64_t e, to_int(cells[c_expert], n_line));
    if (e < 0 || e > 1 << 20)
      return invalid_argument("trace line " + std::to_string(n_line) + ": bad expert id");
    if (!by_key.count(key)) seq_order.push_back(key);
    by_key[key].push_back(static_cast<int>(e));
    max_e = std::max(max_e, static_cast<int>(e));
  }
  ExpertTrace t;
  t.n_expert = n_expert > 0 ? n_expert : max_e + 1;
  if (max_e >= t.n_expert)
    return invalid_argument("trace: expert " + std::to_string(max_e) + " >= n_expert " +
                            std::to_string(t.n_expert));
  auto distinct = [](std::vector<int> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  };
  if (c_step >= 0) {
    for (auto& [step, experts] : by_key) t.steps.push_back(distinct(experts));
    return t;
  }
  // Continuous batching of `batch` sequences in file order, or shuffled across domains.
  if (mixed) std::shuffle(seq_order.begin(), seq_order.end(), std::mt19937(seed));
  batch = std::max(1, batch);
  std::vector<std::pair<const std::vector<int>*, size_t>> active;
  size_t next_seq = 0;
  for (;;) {
    while (static_cast<int>(active.size()) < batch && next_seq < seq_order.size())
      active.push_back({&by_key[seq_order[next_seq++]], 0});
    if (active.empty()) break;
    std::vector<int> step;
    for (auto& [seq, at] : active) step.push_back((*seq)[at++]);
    t.steps.push_back(distinct(step));
    std::erase_if(active, [](const auto& a) { return a.second >= a.first->size(); });
  }
  return t;
}

std::string step_trace_csv(const std::vector<StepRecord>& steps) {
  std::ostringstream out;
  out << "step,expert,tokens,seqs,seconds,predicted,loads,stall\n";
  for (const StepRecord& s : steps)
    for (int e : s.experts)
      out << s.step << "," << e << "," << s.n_tokens << "," << s.n_seqs << "," << s.seconds << ","
          << s.predicted << "," << s.loads << "," << s.stall << "\n";
  return out.str();
}

Status write_step_trace(const std::string& path, const std::vector<StepRecord>& steps) {
  return write_file_atomic(path, step_trace_csv(steps));
}

void RoutingTraceWriter::add(const std::string& domain, std::span<const int> tokens,
                             std::span<const int> experts) {
  RME_CHECK(tokens.size() == experts.size());
  std::ostringstream out;
  for (size_t t = 0; t < tokens.size(); ++t)
    out << domain << "," << n_seq_ << "," << t << "," << tokens[t] << "," << experts[t] << "\n";
  csv_ += out.str();
  ++n_seq_;
}

Status RoutingTraceWriter::write(const std::string& path) const {
  return write_file_atomic(path, csv_);
}

}  // namespace rme
