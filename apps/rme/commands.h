// apps/rme: the subcommands as named functions over the libraries. Each command X has its options
// (XArgs: plain data, the defaults are the CLI's), run_X(args) (prints to stdout/stderr, returns
// the exit code; failures are printed as "rme: error: ..." and return 1, never thrown), and
// add_X_command, which registers the options with CLI11 and, when X is chosen, sets `run` to call
// run_X. main() only parses; tests call run_X directly (rme_cli library).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common.h"
#include "engine/sampler.h"
#include "scheduler/schedule.h"
#include "server/http_server.h"

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
void add_targets_command(CLI::App& root, std::function<int()>& run);

// rme analyze-routing
struct AnalyzeArgs {
  ModelArgs model;
  RoutingArgs routing;
  std::vector<std::string> domains, files;
  std::string out;
  int64_t tokens = 32768;
  int seq_len = 256;
};
int run_analyze_routing(const AnalyzeArgs& a);

// rme bench
struct BenchArgs {
  ModelArgs model;
  RoutingArgs routing;
  std::vector<int> pp = {128, 512};
  int tg = 128;
  int reps = 3;
  double membw_gb = 1.0;
  bool json = false;
  bool batch_invariant = false;
};
int run_bench(BenchArgs a);

// rme bench-serve
struct BenchServeArgs {
  std::string url = "http://127.0.0.1:8080", trace, model, out, label = "run";
  std::vector<std::string> corpus, compare;
  int requests = 100, skip = 0, max_prompt = 1024;
  double time_scale = 1.0, length_scale = 1.0;
  // Closed loop (clients > 0): each client sends its next request when the last one finishes.
  int clients = 0, prompt_tokens = 20, max_tokens = 64;
  int max_connections = 256;  // open loop: requests in flight at most (client threads)
  uint32_t seed = 1;
};
int run_bench_serve(const BenchServeArgs& a);

// rme cache-sim
struct CacheSimArgs {
  std::string trace, policy = "all", out;
  std::vector<int> capacity;
  int batch = 8, lookahead = 4, n_expert = 0;
  std::string order = "file";
  uint32_t seed = 1;
};
int run_cache_sim(const CacheSimArgs& a);

// rme convert
struct ConvertArgs {
  ModelArgs model;
  std::string out;
  std::string type;
};
int run_convert(const ConvertArgs& a);

// rme corpus
struct CorpusArgs {
  std::vector<std::string> domains;
  std::vector<std::string> valids;
  std::string tokenizer;
  std::string out;
  double frac = 0.05;
  int threads = 0;
};
int run_corpus(const CorpusArgs& a);

// rme generate
struct GenerateArgs {
  ModelArgs model;
  RoutingArgs routing;
  std::string prompt;
  int tokens = 256;
  int new_tokens = 0;
  int ctx = 0;
  SamplingParams sampling;
  bool ignore_eos = false;
};
int run_generate(const GenerateArgs& a);

// rme info
struct InfoArgs {
  ModelArgs model;
  bool check = false;  // --check: every weight scanned for NaN/Inf (--check-weights)
};
int run_info(const InfoArgs& a);

// rme init-random
struct InitRandomArgs {
  std::string shape, config, type = "f16", out;
  uint64_t seed = 1;
  int threads = 0;
  int experts = 0;
  double active = 0.5, shared = 0.25;
  std::string router;
};
int run_init_random(const InitRandomArgs& a);

// rme logits
struct LogitsArgs {
  ModelArgs model;
  std::string ids_text;
  std::string out;
};
int run_logits(const LogitsArgs& a);

// rme moefy
struct MoefyArgs {
  ModelArgs model;
  std::string stats, out, type;
  double keep = 0.5;
  int cluster = 0, top_k = 1;
  uint64_t seed = 1;
  bool prune = false;
  std::string random_backbone, router;
  double active = 0.5, shared = 0.25;
};
int run_moefy(const MoefyArgs& a);

// rme perplexity
struct PerplexityArgs {
  ModelArgs model;
  RoutingArgs routing;
  std::string file;
  int ctx = 0;
  int max_chunks = 0;
  bool json_out = false;
};
int run_perplexity(const PerplexityArgs& a);

// rme profile
struct ProfileArgs {
  ModelArgs model;
  std::vector<std::string> domains;
  std::string out;
  int64_t tokens = 65536;
  int seq_len = 256;
  int max_seqs = 4096;
};
int run_profile(const ProfileArgs& a);

// rme targets: the router's distillation targets, made by the engine (train-router reads them)
struct TargetsArgs {
  ModelArgs model;    // the MoE from rme moefy
  std::string dense;  // its dense parent (default: the one moefy recorded)
  std::string corpus, out;
  int seq_len = 128;
  int64_t tokens = 1 << 18, eval_tokens = 8192;
  uint64_t seed = 1;
  bool gate_inputs = false;
};
int run_targets(const TargetsArgs& a);

// rme serve
struct ServeArgs {
  ModelArgs model;
  RoutingArgs routing;
  HttpOptions http;
  std::string policy, eviction = "belady", trace_out, load_mode = "copy";
  double expert_cache_mb = 0;
  bool direct_io = false, no_prefetch = false, fast_prefill = false, mlock = false;
  int block_size = 16, kv_blocks = 0, max_seq_len = 0, max_body_kb = 1024;
  StepBudget budget;
};
int run_serve(ServeArgs a);

// rme tokenizer-train
struct TokenizerTrainArgs {
  std::vector<std::string> inputs;
  std::string out;
  int vocab = 4096;
  int max_lines = 2000000;
};
int run_tokenizer_train(const TokenizerTrainArgs& a);

// A random-weight Read-ME backbone of a named shape driven by the trained router of another MoE
// (init-random --router, moefy --random-backbone). Returns the exit code.
int write_timing_model(const std::string& shape, const std::string& router_from,
                       const std::string& type, double active, double shared, uint64_t seed,
                       const std::string& out);

}  // namespace rme::cli
