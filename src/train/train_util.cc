// train: shared training-loop helpers.
#include "train/train_util.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/file.h"
#include "core/progress.h"
#include "core/timer.h"

namespace rme {
torch::Tensor sample_batch(const std::vector<Domain>& domains, uint64_t seed, int step, int micro,
                           int batch, int seq_len) {
  std::mt19937_64 rng(splitmix(seed * 1000003u + static_cast<uint64_t>(step) * 1024u + micro));
  double total = 0;
  for (const auto& d : domains) total += d.weight;
  const int64_t T = seq_len + 1;
  auto ids = torch::empty({batch, T}, torch::kInt64);
  auto* p = ids.data_ptr<int64_t>();
  std::uniform_real_distribution<double> u(0, total);
  for (int b = 0; b < batch; ++b) {
    double r = u(rng);
    size_t di = 0;
    while (di + 1 < domains.size() && (r -= domains[di].weight) >= 0) ++di;
    while (domains[di].weight == 0) ++di;  // r landed on a zero-weight tail
    const TokenShard& s = domains[di].train;
    const int64_t off = static_cast<int64_t>(rng() % static_cast<uint64_t>(s.size() - T));
    for (int64_t t = 0; t < T; ++t) p[b * T + t] = s[off + t];
  }
  return ids;
}

torch::Tensor valid_windows(const TokenShard& s, int seq_len, int64_t max_tokens) {
  const int64_t T = seq_len + 1;
  const int64_t n =
      std::max<int64_t>(1, std::min<int64_t>(max_tokens / seq_len, (s.size() - 1) / seq_len));
  auto ids = torch::empty({n, T}, torch::kInt64);
  auto* p = ids.data_ptr<int64_t>();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t t = 0; t < T; ++t) p[b * T + t] = s[b * seq_len + t];
  return ids;
}

void configure_threads(int n) {
  torch::set_num_threads(1);
  if (n > 0) {
    using SetThreads = void (*)(int);
    if (auto* f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
      f(n);
  }
}

torch::Tensor rows_to_tensor(const std::vector<std::vector<double>>& rows, size_t cols) {
  auto t = torch::full({static_cast<int64_t>(rows.size()), static_cast<int64_t>(cols)}, NAN,
                       torch::kFloat64);
  auto a = t.accessor<double, 2>();
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t c = 0; c < cols && c < rows[r].size(); ++c) a[r][c] = rows[r][c];
  return t;
}

std::vector<std::vector<double>> tensor_to_rows(const torch::Tensor& t) {
  if (t.dim() != 2) return {};
  const torch::Tensor d = t.to(torch::kFloat64).contiguous();
  std::vector<std::vector<double>> rows(d.size(0), std::vector<double>(d.size(1)));
  auto a = d.accessor<double, 2>();
  for (int64_t r = 0; r < d.size(0); ++r)
    for (int64_t k = 0; k < d.size(1); ++k) rows[r][k] = a[r][k];
  return rows;
}

Status save_archive_atomic(torch::serialize::OutputArchive& a, const std::string& path) {
  // core's one atomic writer (temp file, fsync, rename, directory fsync), fed by the archive.
  RME_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFileWriter> out, AtomicFileWriter::create(path));
  Status st = Status::Ok();
  try {
    // Every write is reported as done, even after one failed (disk full): libtorch's zip
    // writer enforces full writes and, from its destructor, terminates the process on a short
    // one. The first error is kept and returned after; the temp file is then removed and the
    // previous checkpoint stays as it was.
    a.save_to([&](const void* data, size_t n) -> size_t {
      if (st.ok()) st = out->write(data, n);
      return n;
    });
  } catch (const std::exception& e) {
    return io_error(path + ": cannot save: " + e.what());
  }
  RME_RETURN_IF_ERROR(st);
  return out->commit();
}

Status load_archive(torch::serialize::InputArchive& a, const std::string& path) {
  try {
    a.load_from(path);
  } catch (const std::exception& e) {
    return corrupt(path + ": cannot read checkpoint: " + e.what());
  }
  return Status::Ok();
}

void progress_line(const char* what, int step, int steps, const std::string& extra, double rate,
                   const char* unit, double elapsed, int first_step) {
  // On a terminal the line is redrawn in place; in a log, one line every 5 s and the last step.
  static const bool tty = isatty(STDERR_FILENO);
  static double last = -1e30;
  const double now = now_seconds();
  if (!tty && step < steps && now - last < 5) return;
  last = now;
  const double eta = step > first_step ? elapsed / (step - first_step) * (steps - step) : 0;
  std::fprintf(stderr, "%s%s step %d/%d | %s | %.0f %s | elapsed %s | ETA %s%s", tty ? "\r" : "",
               what, step, steps, extra.c_str(), rate, unit, format_duration(elapsed).c_str(),
               format_duration(eta).c_str(), tty ? "\033[K" : "\n");
  std::fflush(stderr);
}

}  // namespace rme
