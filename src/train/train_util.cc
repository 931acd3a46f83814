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

namespace rme {
Result<std::vector<Domain>> open_domains(const std::string& dir, int seq_len,
                                         const std::map<std::string, double>& mixture,
                                         int& n_vocab) {
  RME_ASSIGN_OR_RETURN(CorpusManifest man, read_manifest(dir));
  n_vocab = man.n_vocab;
  for (const auto& [d, w] : mixture)
    if (!man.train.count(d))
      return invalid_argument("mixture names domain '" + d + "', not in the corpus");
  std::vector<Domain> domains;
  double wsum = 0;
  for (const auto& [name, info] : man.train) {
    Domain d;
    d.name = name;
    d.weight = mixture.empty() ? 1.0 : (mixture.count(name) ? mixture.at(name) : 0.0);
    wsum += d.weight;
    RME_ASSIGN_OR_RETURN(d.train, TokenShard::open(dir + "/" + info.file, man.n_vocab));
    if (d.train.size() <= seq_len + 1)
      return invalid_argument(name + ": fewer tokens than seq_len + 1");
    if (man.valid.count(name)) {
      const ShardInfo& v = man.valid.at(name);
      RME_ASSIGN_OR_RETURN(d.valid, TokenShard::open(dir + "/" + v.file, man.n_vocab));
      d.has_valid = d.valid.size() > seq_len + 1;
      d.bytes_per_token = v.tokens > 0 ? double(v.bytes) / v.tokens : 0;
    }
    domains.push_back(std::move(d));
  }
  if (!(wsum > 0)) return invalid_argument("every domain has mixture weight 0");
  return domains;
}

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

std::string fmt_duration(double s) {
  char buf[32];
  int h = static_cast<int>(s / 3600), m = static_cast<int>(std::fmod(s, 3600) / 60);
  std::snprintf(buf, sizeof(buf), "%dh%02dm%02ds", h, m, static_cast<int>(std::fmod(s, 60)));
  return buf;
}

void progress_line(const char* what, int step, int steps, const std::string& extra, double rate,
                   const char* unit, double elapsed) {
  const double eta = step > 0 ? elapsed / step * (steps - step) : 0;
  std::fprintf(stderr, "\r%s step %d/%d | %s | %.0f %s | elapsed %s | ETA %s\033[K", what, step,
               steps, extra.c_str(), rate, unit, fmt_duration(elapsed).c_str(),
               fmt_duration(eta).c_str());
}

}  // namespace rme
