// apps/rme: `rme corpus` — tokenize each domain once into train/valid token shards + manifest.
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>

#include "commands.h"
#include "common.h"
#include "core/file.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "formats/text_corpus.h"
#include "tokenizer/hf_tokenizer.h"

namespace rme::cli {
namespace {

struct Job {
  std::string domain;
  bool valid;
  std::vector<std::string> docs;
  std::vector<std::string> sources;
};

}  // namespace

void add_corpus_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "corpus", "Tokenize text domains into train/validation token shards with a manifest");
  auto a = std::make_shared<CorpusArgs>();
  app->add_option("--domain", a->domains, "NAME=FILE[,FILE...] training text of a domain")
      ->required();
  app->add_option("--valid", a->valids,
                  "NAME=FILE[,FILE...] held-out text of a domain (official splits); domains "
                  "without one hold out the tail of their files");
  app->add_option("--valid-fraction", a->frac, "tail fraction held out when no --valid is given")
      ->check(CLI::Range(0.001, 0.5));
  app->add_option("--tokenizer", a->tokenizer, "directory with tokenizer.model or tokenizer.json")
      ->required();
  app->add_option("--out", a->out, "output corpus directory")->required();
  app->add_option("-t,--threads", a->threads, "worker threads")->check(CLI::Range(0, 1024));
  app->callback([a, &run] { run = [a] { return run_corpus(*a); }; });
}

int run_corpus(const CorpusArgs& a) {
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  auto tok = load_hf_tokenizer(a.tokenizer);
  if (!tok.ok()) return fail(tok.status());
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec) return fail(io_error(a.out + ": " + ec.message()));
  std::map<std::string, std::vector<std::string>> valid_files;
  for (const auto& v : a.valids) {
    auto p = parse_domain(v);
    if (!p.ok()) return fail(p.status().with_context("--valid"));
    valid_files[p->first] = p->second;
  }
  std::vector<Job> jobs;
  for (const auto& d : a.domains) {
    auto p = parse_domain(d);
    if (!p.ok()) return fail(p.status().with_context("--domain"));
    std::vector<std::string> docs;
    for (const auto& f : p->second) {
      auto r = read_documents(f);
      if (!r.ok()) return fail(r.status());
      docs.insert(docs.end(), r->begin(), r->end());
    }
    Job train{p->first, false, {}, p->second}, valid{p->first, true, {}, {}};
    if (valid_files.count(p->first)) {
      train.docs = std::move(docs);
      valid.sources = valid_files[p->first];
      for (const auto& f : valid.sources) {
        auto r = read_documents(f);
        if (!r.ok()) return fail(r.status());
        valid.docs.insert(valid.docs.end(), r->begin(), r->end());
      }
    } else {
      split_tail(docs, a.frac, train.docs, valid.docs);
      valid.sources = {"tail " + std::to_string(a.frac) + " of the training files"};
    }
    jobs.push_back(std::move(train));
    jobs.push_back(std::move(valid));
  }
  for (const auto& [name, f] : valid_files) {
    bool known = false;
    for (const auto& j : jobs) known |= j.domain == name;
    if (!known) return fail(invalid_argument("--valid " + name + ": no --domain of that name"));
  }
  CorpusManifest m;
  const Tokenizer& t = **tok;
  m.n_vocab = t.n_vocab();
  m.bos = t.special().bos;
  // Documents, biggest first, spread over threads; each is one encode call so the tokens
  // are exactly what `rme perplexity` sees for the same text.
  struct Doc {
    size_t job, index;
  };
  std::vector<Doc> order;
  for (size_t j = 0; j < jobs.size(); ++j)
    for (size_t i = 0; i < jobs[j].docs.size(); ++i) order.push_back({j, i});
  std::sort(order.begin(), order.end(), [&](const Doc& a, const Doc& b) {
    return jobs[a.job].docs[a.index].size() > jobs[b.job].docs[b.index].size();
  });
  std::vector<std::vector<std::vector<int>>> encoded(jobs.size());
  for (size_t j = 0; j < jobs.size(); ++j) encoded[j].resize(jobs[j].docs.size());
  int64_t total_bytes = 0;
  for (const auto& j : jobs)
    for (const auto& d : j.docs) total_bytes += static_cast<int64_t>(d.size());
  Progress progress("tokenize", total_bytes / 1000, "kB");
  std::atomic<int64_t> done{0};
  std::mutex mu;
  const double t0 = now_seconds();
  ThreadPool::global().parallel_for(
      static_cast<int64_t>(order.size()), 1, [&](int64_t b, int64_t e, int) {
        for (int64_t k = b; k < e; ++k) {
          const Doc& d = order[k];
          encoded[d.job][d.index] = t.encode(jobs[d.job].docs[d.index], true);
          done += static_cast<int64_t>(jobs[d.job].docs[d.index].size());
          std::lock_guard<std::mutex> lock(mu);
          progress.update(done / 1000);
        }
      });
  progress.finish();
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = jobs[j];
    ShardInfo info;
    info.file = job.domain + (job.valid ? ".valid.bin" : ".train.bin");
    info.sources = job.sources;
    info.documents = static_cast<int64_t>(job.docs.size());
    std::vector<int32_t> all;
    for (size_t i = 0; i < job.docs.size(); ++i) {
      info.bytes += static_cast<int64_t>(job.docs[i].size());
      all.insert(all.end(), encoded[j][i].begin(), encoded[j][i].end());
    }
    info.tokens = static_cast<int64_t>(all.size());
    if (job.valid) {  // the held-out text itself, for `rme perplexity` on exactly this split
      std::string text;
      for (const auto& d : job.docs) text += d + (d.empty() || d.back() != '\n' ? "\n" : "");
      if (Status st = write_file_atomic(a.out + "/" + job.domain + ".valid.txt", text); !st.ok())
        return fail(st);
    }
    if (Status st = write_token_shard(a.out + "/" + info.file, all, m.n_vocab); !st.ok())
      return fail(st);
    (job.valid ? m.valid : m.train)[job.domain] = info;
    std::fprintf(stderr, "%-12s %-5s %9lld tokens %10lld bytes (%.2f bytes/token)\n",
                 job.domain.c_str(), job.valid ? "valid" : "train",
                 static_cast<long long>(info.tokens), static_cast<long long>(info.bytes),
                 info.tokens ? double(info.bytes) / info.tokens : 0.0);
  }
  // The corpus carries its tokenizer so training and export need nothing else.
  for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"}) {
    if (!file_exists(a.tokenizer + "/" + f)) continue;
    auto bytes = read_file(a.tokenizer + "/" + f);
    if (!bytes.ok()) return fail(bytes.status());
    if (Status st = write_file_atomic(a.out + "/" + f, *bytes); !st.ok()) return fail(st);
    if (m.tokenizer.empty()) m.tokenizer = f;
  }
  if (Status st = write_manifest(a.out, m); !st.ok()) return fail(st);
  std::fprintf(stderr, "wrote %s/manifest.json in %.1f s\n", a.out.c_str(), now_seconds() - t0);
  return 0;
}

}  // namespace rme::cli
