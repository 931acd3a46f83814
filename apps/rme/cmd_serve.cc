// apps/rme: `rme serve` — the OpenAI-compatible server with continuous batching, pre-gated
// expert-aware scheduling and the budgeted expert cache.
#include <malloc.h>

#include <csignal>
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "core/file.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "scheduler/expert_trace.h"
#include "server/http_server.h"

namespace rme::cli {
namespace {

HttpServer* g_server = nullptr;
void on_signal(int) {
  if (g_server) g_server->stop();
}

}  // namespace

void add_serve_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand("serve", "OpenAI-compatible server (completions, chat, SSE)");
  auto a = std::make_shared<ServeArgs>();
  a->model.add(*app);
  a->routing.add(*app);
  app->add_option("--host", a->http.host, "address to bind (default 127.0.0.1: localhost only)");
  app->add_option("--port", a->http.port, "port (default 8080; 0 = any free port)")
      ->check(CLI::Range(0, 65535));
  app->add_option("--api-key", a->http.api_key, "require Authorization: Bearer KEY");
  app->add_option("--model-name", a->http.model_name, "the id /v1/models reports");
  app->add_option("--max-body-kb", a->max_body_kb, "request body limit in KiB (default 1024)")
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--request-timeout", a->http.request_timeout_s,
                  "seconds a client has to send a whole request (default 10; then 408)")
      ->check(CLI::Range(0.1, 3600.0));
  app->add_option("--max-connections", a->http.max_connections,
                  "connections still sending a request, at most (default 1024; more get 503)")
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--max-connections-per-client", a->http.max_connections_per_client,
                  "of those, from one address (default 256; 0 = no limit; behind a proxy, "
                  "at least the proxy's connection limit)")
      ->check(CLI::Range(0, 1 << 20));
  app->add_option("--threads-http", a->http.threads,
                  "request handler threads (default 96; each streaming client holds one)")
      ->check(CLI::Range(1, 4096));
  app->add_option("--max-prompt-tokens", a->http.limits.max_prompt_tokens, "prompt limit")
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--max-tokens-limit", a->http.limits.max_new_tokens, "max_tokens limit")
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--policy", a->policy,
                  "scheduling policy: fcfs | expert (default: expert for a Read-ME MoE — fcfs's "
                  "plan whenever every expert is resident, tokens of loaded experts first under "
                  "--expert-cache-mb — and fcfs for a dense model)")
      ->check(CLI::IsMember({"fcfs", "expert"}));
  app->add_option("--max-step-tokens", a->budget.max_tokens, "tokens per step (default 256)")
      ->check(CLI::Range(1, 8192));
  app->add_option("--max-step-seqs", a->budget.max_seqs, "sequences per step (default 64)")
      ->check(CLI::Range(1, 4096));
  app->add_option("--max-step-experts", a->budget.max_experts,
                  "distinct routed experts per step (0 = no limit)")
      ->check(CLI::Range(0, 1024));
  app->add_option("--prefill-chunk", a->budget.prefill_chunk,
                  "prompt tokens of one request per step (0 = the step budget)");
  app->add_option("--aging-steps", a->budget.aging_steps,
                  "expert policy: serve a request first once it waited this many steps")
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--block-size", a->block_size, "KV block size in tokens")
      ->check(CLI::Range(1, 4096));
  app->add_option("--kv-blocks", a->kv_blocks, "KV blocks (default: 8 full-length sequences)");
  app->add_option("--max-seq-len", a->max_seq_len,
                  "prompt + output limit (default: model context)");
  app->add_option("--expert-cache-mb", a->expert_cache_mb,
                  "resident expert weights at most (MiB; 0 = all, read in place)");
  app->add_option("--eviction", a->eviction, "expert cache eviction: lru | lfu | belady")
      ->check(CLI::IsMember({"lru", "lfu", "belady"}));
  app->add_flag("--direct-io", a->direct_io, "load experts with O_DIRECT (bypass the page cache)");
  app->add_flag("--no-prefetch", a->no_prefetch, "do not load the next step's experts ahead");
  app->add_flag(
      "--fast-prefill", a->fast_prefill,
      "matrix-product prefill: faster, but a request's output may then depend on its batch");
  app->add_option("--load", a->load_mode,
                  "copy (default): weights copied into memory, so replacing or truncating the "
                  "checkpoint cannot crash the server; mmap: served from the mapped file (less "
                  "memory, but the file must not change while serving)")
      ->check(CLI::IsMember({"copy", "mmap"}));
  app->add_flag("--mlock", a->mlock,
                "pin the weights in memory (never paged out; needs the memlock limit, ulimit -l)");
  app->add_option("--trace-out", a->trace_out, "write the per-step expert trace (CSV) on exit");
  app->callback([a, &run] { run = [a] { return run_serve(*a); }; });
}

int run_serve(ServeArgs a) {
  // The trace is written at exit: a path it could never be written to fails now, not then.
  if (!a.trace_out.empty())
    if (auto t = regular_file_target(a.trace_out); !t.ok()) return fail(t.status());
  auto loaded = load(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  if (!loaded->tokenizer)
    return fail(invalid_argument(
        "serve: the model has no tokenizer (pass --tokenizer: a directory with tokenizer.json "
        "or tokenizer.model)"));
  const Model& m = *loaded->model;
  // Request bodies (up to --max-body-kb each, many at once) come from mmap and go back to the
  // system when freed: glibc's default raises this threshold after the first large free, and
  // its arenas then keep an attack's worth of bodies for the life of the process.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  a.http.max_body_bytes = static_cast<size_t>(a.max_body_kb) * 1024;
  ServingOptions so;
  // Measured (docs/serving.md): expert ties fcfs with every expert resident and gains hit
  // rate (and throughput with Q4_0 experts) under a cache, so it is the MoE default.
  so.policy = !a.policy.empty() ? a.policy : m.moe.is_moe() ? "expert" : "fcfs";
  so.budget = a.budget;
  so.expert_cache_bytes = static_cast<int64_t>(a.expert_cache_mb * (1 << 20));
  so.eviction = parse_eviction(a.eviction).value();
  so.direct_io = a.direct_io;
  so.prefetch = !a.no_prefetch;
  if (m.moe.is_moe()) {
    auto routing = a.routing.options();
    if (!routing.ok()) return fail(routing.status());
    so.routing = *routing;
  } else if (a.routing.mode != "router") {
    return fail(invalid_argument("--routing " + a.routing.mode + ": the model is dense"));
  }
  BatchEngineOptions eo;
  auto kernels = a.model.kernels();
  if (!kernels.ok()) return fail(kernels.status());
  eo.kernels = *kernels;
  eo.kernels.batch_invariant = !a.fast_prefill;
  if (eo.kernels.bf16 && a.load_mode != "copy")  // the conversion writes the model's own copy
    return fail(
        invalid_argument("--bf16 / RME_BF16=1 converts weights at load: it needs --load "
                         "copy (the mapping's pages stay the file's)"));
  eo.block_size = a.block_size;
  eo.n_block = a.kv_blocks;
  eo.max_seq_len = a.max_seq_len;
  // Weights in memory before /health says ready: copied (the default), or faulted in from the
  // mapping; experts under a cache budget stay on disk (read into slots, checked). A copy is
  // then interleaved for the kernels (same size; the served bits are the rows'); a mapping is
  // kept as the file's rows, so that replicas on one machine share its pages.
  const bool skip_experts = so.expert_cache_bytes > 0;
  if (a.load_mode == "copy")
    if (Status st = detach_model_files(m, skip_experts); !st.ok()) return fail(st);
  if (a.load_mode == "mmap" || a.mlock)
    if (Status st = fault_in_model_files(m, skip_experts, a.mlock); !st.ok()) return fail(st);
  if (a.load_mode == "copy")
    if (Status st = prepare_weights(a.model, *loaded->model, eo.kernels, skip_experts); !st.ok())
      return fail(st);
  auto loop = ServingLoop::create(m, ThreadPool::global(), eo, so);
  if (!loop.ok()) return fail(loop.status());
  HttpServer server(**loop, *loaded->tokenizer, a.http);
  if (Status st = server.bind(); !st.ok()) return fail(st);
  g_server = &server;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  (*loop)->start();
  std::fprintf(stderr, "rme serve: %s on http://%s:%d (policy %s%s)\n", m.source.c_str(),
               a.http.host.c_str(), server.port(), so.policy.c_str(),
               so.expert_cache_bytes ? ", expert cache" : "");
  const StepCostParams cost = (*loop)->step_cost();
  if (cost.enabled())
    std::fprintf(stderr,
                 "rme serve: step cost model (calibrated): %.1f ms per step + %.2f ms per token "
                 "+ %.2f ms per routed expert read%s\n",
                 cost.fixed * 1e3, cost.per_token * 1e3, cost.per_expert * 1e3,
                 cost.per_load > 0 ? " (+ a load when not resident)" : "");
  std::fflush(stderr);
  Status st = server.listen();
  (*loop)->stop();
  g_server = nullptr;
  if (!a.trace_out.empty())
    if (Status w = write_step_trace(a.trace_out, (*loop)->take_steps()); !w.ok()) return fail(w);
  return st.ok() ? 0 : fail(st);
}

}  // namespace rme::cli
