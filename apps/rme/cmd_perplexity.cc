// apps/rme: `rme perplexity` — chunked perplexity and bits per byte over a text file.
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "core/file.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "model/forward.h"

namespace rme::cli {

void add_perplexity_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "perplexity",
      "Perplexity and bits per byte of a model over a text file (non-overlapping chunks)");
  auto a = std::make_shared<PerplexityArgs>();
  a->model.add(*app);
  a->routing.add(*app);
  app->add_option("-f,--file", a->file, "text file to score")->required();
  app->add_option("-c,--ctx", a->ctx,
                  "chunk length in tokens, BOS included (default: model context, at most 512)")
      ->check(CLI::Range(2, 1 << 20));
  app->add_option("--chunks", a->max_chunks, "score at most this many chunks (0 = all)")
      ->check(CLI::Range(0, 1 << 30));
  app->add_flag("--json", a->json_out, "print the result as JSON on stdout");
  app->callback([a, &run] { run = [a] { return run_perplexity(*a); }; });
}

int run_perplexity(const PerplexityArgs& a) {
  auto text = read_file(a.file);
  if (!text.ok()) return fail(text.status());
  auto loaded = load(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  if (!loaded->tokenizer) return fail(invalid_argument(a.model.model + ": no tokenizer"));
  const Model& m = *loaded->model;
  const Tokenizer& tok = *loaded->tokenizer;
  const int n_ctx = a.ctx > 0 ? a.ctx : std::min(m.config.n_ctx, 512);
  const int bos = tok.special().bos;
  std::vector<int> ids = tok.encode(*text, false);
  // Each chunk is [BOS] + (n_ctx - 1) text tokens; every text token is predicted once.
  const int per_chunk = bos >= 0 ? n_ctx - 1 : n_ctx;
  const int64_t n_scored_max =
      bos >= 0 ? static_cast<int64_t>(ids.size()) : static_cast<int64_t>(ids.size()) - 1;
  int64_t n_chunks = (static_cast<int64_t>(ids.size()) + per_chunk - 1) / per_chunk;
  if (a.max_chunks > 0) n_chunks = std::min<int64_t>(n_chunks, a.max_chunks);
  if (ids.empty() || n_scored_max <= 0)
    return fail(invalid_argument(a.file + ": no tokens to score"));
  KvCache kv(m, n_ctx);
  auto kernels = a.model.kernels();
  if (!kernels.ok()) return fail(kernels.status());
  if (Status st = prepare_weights(a.model, *loaded->model, *kernels); !st.ok()) return fail(st);
  std::unique_ptr<Model> dense;  // oracle routing's parent: outlives the router using it
  Forward fwd(m, 64, ThreadPool::global(), *kernels);
  if (Status st = a.routing.apply(fwd, dense); !st.ok()) return fail(st);
  const int V = m.config.n_vocab;
  std::vector<float> logits(static_cast<size_t>(n_ctx) * V);
  double nll = 0;
  int64_t n_scored = 0, n_bytes = 0;
  Progress progress("perplexity", n_chunks, "chunks");
  const double t0 = now_seconds();
  for (int64_t c = 0; c < n_chunks; ++c) {
    const size_t begin = static_cast<size_t>(c) * per_chunk;
    const size_t end = std::min(ids.size(), begin + per_chunk);
    std::vector<int> chunk;
    if (bos >= 0) chunk.push_back(bos);
    chunk.insert(chunk.end(), ids.begin() + begin, ids.begin() + end);
    if (chunk.size() < 2) break;
    if (Status st = fwd.run(chunk, 0, kv, logits.data(), true); !st.ok()) return fail(st);
    for (size_t i = 0; i + 1 < chunk.size(); ++i) {
      const float* l = &logits[i * V];
      float mx = l[0];
      for (int v = 1; v < V; ++v) mx = std::max(mx, l[v]);
      double sum = 0;
      for (int v = 0; v < V; ++v) sum += std::exp(static_cast<double>(l[v] - mx));
      const int target = chunk[i + 1];
      nll += std::log(sum) - (l[target] - mx);
      ++n_scored;
      const size_t idx = begin + i + (bos >= 0 ? 0 : 1);  // index of target in ids
      n_bytes += static_cast<int64_t>(tok.decode_token(idx > 0 ? ids[idx - 1] : -1, target).size());
    }
    progress.update(c + 1);
  }
  progress.finish();
  const double ppl = std::exp(nll / n_scored);
  const double bpb = n_bytes > 0 ? nll / std::log(2.0) / n_bytes : 0;
  const double secs = now_seconds() - t0;
  if (a.json_out) {
    std::printf(
        "{\"model\": \"%s\", \"routing\": \"%s\", \"file\": \"%s\", \"ctx\": %d, \"chunks\": "
        "%lld, \"tokens\": "
        "%lld, "
        "\"bytes\": %lld, \"nll_per_token\": %.6f, \"perplexity\": %.6f, \"bits_per_byte\": "
        "%.6f, "
        "\"seconds\": %.3f}\n",
        a.model.model.c_str(), m.moe.is_moe() ? a.routing.mode.c_str() : "dense", a.file.c_str(),
        n_ctx, static_cast<long long>(n_chunks), static_cast<long long>(n_scored),
        static_cast<long long>(n_bytes), nll / n_scored, ppl, bpb, secs);
  } else {
    std::printf(
        "%s: %lld tokens in %lld chunks of %d: perplexity %.4f, %.4f nats/token, %.4f "
        "bits/byte (%.1f tok/s)\n",
        a.file.c_str(), static_cast<long long>(n_scored), static_cast<long long>(n_chunks), n_ctx,
        ppl, nll / n_scored, bpb, n_scored / secs);
  }
  return 0;
}

}  // namespace rme::cli
