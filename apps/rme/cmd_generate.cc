// apps/rme: `rme generate` — stream a continuation of a prompt; speed to stderr.
#include <cctype>
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "core/thread_pool.h"
#include "engine/generator.h"
#include "kernels/cpu.h"

namespace rme::cli {
namespace {

// Like llama2.c's safe_printf: a lone control byte (other than whitespace) is not printed.
void print_piece(const std::string& piece) {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    unsigned char c = static_cast<unsigned char>(piece[0]);
    if (c < 0x80 && !std::isprint(c) && !std::isspace(c)) return;
  }
  std::fwrite(piece.data(), 1, piece.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void add_generate_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "generate", "Generate text from a prompt (streams to stdout, speed to stderr)");
  auto a = std::make_shared<GenerateArgs>();
  a->model.add(*app);
  a->routing.add(*app);
  app->add_option("-p,--prompt", a->prompt, "prompt text (may be empty: generate from BOS)");
  app->add_option("-n,--tokens", a->tokens,
                  "stop when N tokens have been printed, prompt included and BOS not counted "
                  "(llama2.c's -n)")
      ->check(CLI::Range(1, 1 << 24));
  app->add_option("--new-tokens", a->new_tokens, "instead: stop after N newly generated tokens")
      ->check(CLI::Range(1, 1 << 24));
  app->add_option("-c,--ctx", a->ctx, "context length (default: the model's, at most 4096)")
      ->check(CLI::Range(1, 1 << 24));
  app->add_option("--temp", a->sampling.temperature, "temperature; 0 = greedy")->default_val(0.8f);
  app->add_option("--top-k", a->sampling.top_k, "keep the k most likely tokens (0 = off)")
      ->default_val(40);
  app->add_option("--top-p", a->sampling.top_p, "nucleus sampling threshold (1 = off)")
      ->default_val(0.95f);
  app->add_option("--min-p", a->sampling.min_p,
                  "drop tokens below min-p x the top probability (0 = off)")
      ->default_val(0.05f);
  app->add_option("--repeat-penalty", a->sampling.repeat_penalty,
                  "penalty for recent tokens (1 = off)")
      ->default_val(1.0f);
  app->add_option("--repeat-last-n", a->sampling.repeat_last_n, "window of the repetition penalty")
      ->default_val(64);
  app->add_option("-s,--seed", a->sampling.seed, "RNG seed (same seed, same text)")->default_val(0);
  app->add_flag("--ignore-eos", a->ignore_eos, "keep generating past end-of-sequence tokens");
  app->callback([a, &run] { run = [a] { return run_generate(*a); }; });
}

int run_generate(const GenerateArgs& a) {
  auto loaded = load(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  if (!loaded->tokenizer)
    return fail(invalid_argument(a.model.model +
                                 ": no tokenizer (pass --tokenizer: tokenizer.bin for a llama2.c "
                                 "file, else a directory with tokenizer.json or "
                                 "tokenizer.model)"));
  const Model& m = *loaded->model;
  const Tokenizer& tok = *loaded->tokenizer;
  const int n_ctx = a.ctx > 0 ? a.ctx : std::min(m.config.n_ctx, 4096);
  std::vector<int> ids = tok.encode(a.prompt, tok.special().add_bos);
  if (ids.empty()) {
    if (tok.special().bos < 0)
      return fail(invalid_argument("empty prompt and the tokenizer has no BOS"));
    ids.push_back(tok.special().bos);
  }
  const bool has_bos = tok.special().bos >= 0 && ids[0] == tok.special().bos;
  GenerationLimits limits;
  limits.stop_at_eos = !a.ignore_eos;
  if (a.new_tokens > 0) {
    limits.max_total = 0;
    limits.max_new = a.new_tokens;
  } else {
    limits.max_total = a.tokens + (has_bos ? 1 : 0);
  }
  auto kernels = a.model.kernels();
  if (!kernels.ok()) return fail(kernels.status());
  if (Status st = prepare_weights(a.model, *loaded->model, *kernels); !st.ok()) return fail(st);
  std::unique_ptr<Model> dense;  // oracle routing's parent: outlives the router using it
  Generator gen(m, tok, ThreadPool::global(), n_ctx, *kernels);
  if (Status st = a.routing.apply(gen.forward(), dense); !st.ok()) return fail(st);
  int prev = -1;
  for (int id : ids) {  // echo the prompt as llama2.c does
    print_piece(tok.decode_token(prev, id));
    prev = id;
  }
  auto st = gen.generate(ids, limits, a.sampling, [&](int id) {
    print_piece(tok.decode_token(prev, id));
    prev = id;
    return true;
  });
  std::printf("\n");
  std::fflush(stdout);
  if (!st.ok()) return fail(st.status());
  std::fprintf(
      stderr,
      "prompt: %d tokens, %.1f tok/s | generation: %d tokens, %.1f tok/s | %d threads, %s\n",
      st->n_prompt, st->prompt_tps(), st->n_generated, st->gen_tps(),
      ThreadPool::global().n_threads(), kernels->describe().c_str());
  return 0;
}

}  // namespace rme::cli
