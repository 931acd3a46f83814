// apps/rme: `rme init-random` — a GGUF model with random weights of a named shape or a config,
// for benchmarks (no large real model can be downloaded here). Marked as random in its metadata.
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "formats/model_io.h"
#include "model/random_model.h"
#include "moefy/router_init.h"

namespace rme::cli {

// The type random matrices are generated in: the asked one, or for a mix F16 (the writer then
// quantizes each matrix to the mix's pick).
DType generation_type(const TypeChoice& t) { return t.medium ? DType::kF16 : *t.base; }

int write_timing_model(const std::string& shape, const std::string& router_from,
                       const std::string& type_name, double active, double shared, uint64_t seed,
                       const std::string& out) {
  auto c = named_shape(shape);
  if (!c.ok()) return fail(c.status());
  auto from = load_model(router_from);
  if (!from.ok()) return fail(from.status());
  const Model& src = *from->model;
  if (!src.moe.is_moe() || !src.router)
    return fail(invalid_argument(router_from + ": not a Read-ME MoE with a trained router"));
  auto choice = TypeChoice::parse(type_name);
  if (!choice.ok()) return fail(invalid_argument("--type: " + choice.status().message()));
  const DType gen = generation_type(*choice);
  // The router reads only token ids: give the backbone the router's vocabulary and keep its
  // decisions; the backbone's weights are random, so its outputs mean nothing.
  c->n_vocab = src.config.n_vocab;
  const double t0 = now_seconds();
  Model m = random_moe(*c, src.moe.n_expert, active, shared, gen, seed, ThreadPool::global());
  m.router = src.router;
  m.moe.top_k = src.moe.top_k;
  if (Status st = write_gguf_model(m, from->tokenizer.get(), out, *choice); !st.ok())
    return fail(st);
  std::printf(
      "wrote %s: timing model, %s backbone (RANDOM weights) with %d experts driven by the trained "
      "router of %s, %s, %.2f GB (%.1f s)\n",
      out.c_str(), shape.c_str(), m.moe.n_expert, router_from.c_str(), type_name.c_str(),
      m.weight_bytes() / 1e9, now_seconds() - t0);
  return 0;
}

void add_init_random_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "init-random", "Write a random-weight GGUF model of a named shape (for benchmarks)");
  auto a = std::make_shared<InitRandomArgs>();
  auto* g = app->add_option_group("shape");
  g->add_option("--shape", a->shape, "tinyllama, llama2-7b or rme-mini");
  g->add_option("--config", a->config, "or: a model whose architecture to copy (any format)");
  g->require_option(1);
  app->add_option("--type", a->type, TypeChoice::names())->check([](const std::string& v) {
    auto t = TypeChoice::parse(v);
    return t.ok() ? std::string() : t.status().message();
  });
  app->add_option("--seed", a->seed, "seed");
  app->add_option("--experts", a->experts,
                  "write a Read-ME MoE of this shape instead: N experts + a shared expert, random "
                  "router (timing models)")
      ->check(CLI::Range(0, 256));
  app->add_option("--active", a->active, "MoE: active FFN fraction per token (shared + 1 expert)")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--shared", a->shared, "MoE: shared expert fraction of the FFN")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--router", a->router,
                  "a trained Read-ME MoE whose router (and tokenizer, vocabulary, experts) drives "
                  "the random backbone: a timing model (same as moefy --random-backbone)");
  app->add_option("-t,--threads", a->threads, "worker threads (default: all cores)");
  app->add_option("-o,--out", a->out, "output .gguf")->required();
  app->callback([a, &run] { run = [a] { return run_init_random(*a); }; });
}

int run_init_random(const InitRandomArgs& a) {
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  if (!a.router.empty()) {
    if (a.shape.empty()) return fail(invalid_argument("--router needs --shape"));
    return write_timing_model(a.shape, a.router, a.type, a.active, a.shared, a.seed, a.out);
  }
  LlamaConfig c;
  if (!a.shape.empty()) {
    auto s = named_shape(a.shape);
    if (!s.ok()) return fail(s.status());
    c = *s;
  } else {
    auto lm = load_model(a.config);
    if (!lm.ok()) return fail(lm.status());
    c = lm->model->config;
    if (lm->model->moe.is_moe())
      return fail(invalid_argument(a.config + ": copy the shape of a dense model"));
  }
  auto parsed = TypeChoice::parse(a.type);  // checked by the option
  if (!parsed.ok()) return fail(parsed.status());
  const TypeChoice choice = *parsed;
  const DType gen = generation_type(choice);
  const double t0 = now_seconds();
  Model m = a.experts > 0
                ? random_moe(c, a.experts, a.active, a.shared, gen, a.seed, ThreadPool::global())
                : random_model(c, gen, a.seed, ThreadPool::global());
  if (a.experts > 0) m.router = random_router(c, a.experts, default_router_shape(c), a.seed + 17);
  if (Status st = write_gguf_model(m, nullptr, a.out, choice); !st.ok()) return fail(st);
  std::printf("wrote %s: %s, %s, %.2fB parameters, %.2f GB, RANDOM weights (%.1f s)\n",
              a.out.c_str(), c.summary().c_str(), a.type.c_str(), c.n_params() / 1e9,
              m.weight_bytes() / 1e9, now_seconds() - t0);
  return 0;
}

}  // namespace rme::cli
