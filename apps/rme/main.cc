// apps/rme: the `rme` command-line tool.
#include <cstdio>

#include "commands.h"
#include "core/file.h"
#include "tokenizer/sentencepiece_tokenizer.h"

int main(int argc, char** argv) {
  rme::register_sentencepiece_loader();       // HF directories with tokenizer.model
  rme::exit_cleanly_on_truncated_mappings();  // a model truncated under a command: exit 1
  CLI::App app{
      "rme: refactor dense Llama models into router-decoupled MoEs and serve them (Read-ME)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rme " RME_VERSION);
  std::function<int()> run;
  rme::cli::add_info_command(app, run);
  rme::cli::add_generate_command(app, run);
  rme::cli::add_perplexity_command(app, run);
  rme::cli::add_logits_command(app, run);
  rme::cli::add_convert_command(app, run);
  rme::cli::add_tokenizer_train_command(app, run);
  rme::cli::add_corpus_command(app, run);
  rme::cli::add_train_command(app, run);
  rme::cli::add_profile_command(app, run);
  rme::cli::add_targets_command(app, run);
  rme::cli::add_moefy_command(app, run);
  rme::cli::add_analyze_routing_command(app, run);
  rme::cli::add_init_random_command(app, run);
  rme::cli::add_bench_command(app, run);
  rme::cli::add_serve_command(app, run);
  rme::cli::add_bench_serve_command(app, run);
  rme::cli::add_cache_sim_command(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  // Commands return errors as Status; an exception reaching here is a bug, reported, not aborted.
  try {
    return run ? run() : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rme: error: internal: %s\n", e.what());
    return 1;
  }
}
