// apps/rme: subcommand registration. Each add_*_command registers its options and, when chosen,
// sets `run` to the function main() calls after parsing.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>

namespace rme::cli {

void add_info_command(CLI::App& root, std::function<int()>& run);
void add_generate_command(CLI::App& root, std::function<int()>& run);
void add_perplexity_command(CLI::App& root, std::function<int()>& run);
void add_logits_command(CLI::App& root, std::function<int()>& run);
void add_convert_command(CLI::App& root, std::function<int()>& run);
void add_tokenizer_train_command(CLI::App& root, std::function<int()>& run);
void add_corpus_command(CLI::App& root, std::function<int()>& run);
void add_train_command(CLI::App& root, std::function<int()>& run);
void add_profile_command(CLI::App& root, std::function<int()>& run);
void add_moefy_command(CLI::App& root, std::function<int()>& run);
void add_analyze_routing_command(CLI::App& root, std::function<int()>& run);
void add_init_random_command(CLI::App& root, std::function<int()>& run);
void add_bench_command(CLI::App& root, std::function<int()>& run);
void add_serve_command(CLI::App& root, std::function<int()>& run);
void add_bench_serve_command(CLI::App& root, std::function<int()>& run);
void add_cache_sim_command(CLI::App& root, std::function<int()>& run);

// A random-weight Read-ME backbone of a named shape driven by the trained router of another MoE
// (init-random --router, moefy --random-backbone). Returns the exit code.
int write_timing_model(const std::string& shape, const std::string& router_from,
                       const std::string& type, double active, double shared, uint64_t seed,
                       const std::string& out);

}  // namespace rme::cli
