// apps/rme: `rme profile` — mean |down_proj input| per domain, layer and FFN channel of a dense
// model over calibration text (the statistics `rme moefy` carves experts from).
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "core/thread_pool.h"
#include "formats/text_corpus.h"
#include "moefy/profile.h"

namespace rme::cli {

void add_profile_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "profile", "Record per-domain FFN activation statistics of a dense model (for moefy)");
  auto a = std::make_shared<ProfileArgs>();
  a->model.add(*app);
  app->add_option("--domain", a->domains, "NAME=FILE[,FILE...] calibration text (repeatable)")
      ->required();
  app->add_option("--tokens", a->tokens, "tokens per domain (at most)")
      ->check(CLI::Range(1, 1 << 30));
  app->add_option("--seq-len", a->seq_len, "tokens per sequence (BOS included)")
      ->check(CLI::Range(2, 1 << 16));
  app->add_option("--max-seq-profiles", a->max_seqs,
                  "per-sequence profiles kept for --cluster (0 = none)")
      ->check(CLI::Range(0, 1 << 20));
  app->add_option("-o,--out", a->out, "output statistics (.safetensors)")->required();
  app->callback([a, &run] { run = [a] { return run_profile(*a); }; });
}

int run_profile(const ProfileArgs& a) {
  auto loaded = load(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  if (!loaded->tokenizer) return fail(invalid_argument(a.model.model + ": no tokenizer"));
  const Model& m = *loaded->model;
  const Tokenizer& tok = *loaded->tokenizer;
  const int len = std::min(a.seq_len, m.config.n_ctx);
  // Sequences per domain: each document encoded whole (BOS first), cut into len-token pieces.
  std::vector<std::pair<std::string, std::vector<std::vector<int>>>> work;
  int64_t total = 0;
  for (const std::string& spec : a.domains) {
    auto d = parse_domain(spec);
    if (!d.ok()) return fail(d.status());
    std::vector<std::vector<int>> seqs;
    int64_t n = 0;
    for (const std::string& f : d->second) {
      auto docs = read_documents(f);
      if (!docs.ok()) return fail(docs.status());
      for (const std::string& doc : *docs) {
        std::vector<int> ids = tok.encode(doc, true);
        for (size_t b = 0; b < ids.size() && n < a.tokens; b += len) {
          const size_t e = std::min({ids.size(), b + len, b + static_cast<size_t>(a.tokens - n)});
          if (e - b < 2) break;
          seqs.emplace_back(ids.begin() + b, ids.begin() + e);
          n += static_cast<int64_t>(e - b);
        }
      }
    }
    if (n == 0) return fail(invalid_argument("domain '" + d->first + "': no text"));
    total += n;
    work.emplace_back(d->first, std::move(seqs));
  }
  auto kernels = a.model.kernels();
  if (!kernels.ok()) return fail(kernels.status());
  Profiler profiler(m, ThreadPool::global(), len, a.max_seqs, *kernels);
  Progress progress("profile", total, "tok");
  int64_t done = 0;
  for (const auto& [name, seqs] : work)
    for (const auto& s : seqs) {
      if (Status st = profiler.add(name, s); !st.ok()) return fail(st);
      done += static_cast<int64_t>(s.size());
      progress.update(done);
    }
  progress.finish();
  ProfileStats stats = profiler.finish();
  if (Status st = write_profile(stats, a.out); !st.ok()) return fail(st);
  for (size_t d = 0; d < stats.domains.size(); ++d)
    std::printf("%-10s %8lld tokens\n", stats.domains[d].c_str(),
                static_cast<long long>(stats.tokens[d]));
  std::printf("wrote %s (%d layers x %d channels, %zu sequence profiles)\n", a.out.c_str(),
              stats.n_layer, stats.n_ff, stats.seq_profile.size());
  return 0;
}

}  // namespace rme::cli
