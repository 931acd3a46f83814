// apps/rme: helpers shared by the subcommands (model loading, error reporting, progress).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "core/progress.h"
#include "core/status.h"
#include "formats/model_io.h"
#include "model/forward.h"

namespace rme::cli {

// Options every model-reading command takes.
struct ModelArgs {
  std::string model;
  std::string tokenizer;
  int threads = 0;
  std::string isa;             // --isa; "" = RME_ISA or the widest the CPU runs
  bool check_weights = false;  // --check-weights: scan every weight for NaN/Inf (else a quick scan)
  bool no_interleave = false;  // --no-interleave: keep quantized matrices as the file's rows
  bool bf16 = false;           // --bf16: float matrices as BF16, multiplied in bf16 products
  void add(CLI::App& app);
  // The kernels to run: KernelConfig::from_env() (RME_ISA, RME_INT8, RME_BLAS, RME_BF16), then
  // --isa and --bf16. Fails on an ISA the CPU does not run, or bf16 products it cannot.
  Result<KernelConfig> kernels() const;
};

// How an MoE routes (--routing, --dense, --top-k, --route-seed); ignored for dense models.
struct RoutingArgs {
  std::string mode = "router";  // router | oracle | random | layer-gate | expert:N
  std::string dense;            // oracle: the dense parent (default: the MoE's recorded parent)
  int top_k = 0;
  uint64_t seed = 1;
  void add(CLI::App& app);
  // The inference router these flags name (router, random, expert:N); fails for the analysis
  // baselines (oracle, layer-gate), which need the backbone's activations.
  Result<RoutingOptions> options() const;
  // Sets fwd's router when its model is an MoE: inference's (options()) or moefy's baselines
  // (oracle loads the dense parent into `dense`, which must outlive fwd).
  Status apply(Forward& fwd, std::unique_ptr<Model>& dense) const;
};

// "name=a,b" -> (name, [a, b])
Result<std::pair<std::string, std::vector<std::string>>> parse_domain(const std::string& s);

// Loads the model (and applies --threads); prints the error and returns nullopt on failure.
Result<LoadedModel> load(const ModelArgs& args);
// Rewrites m's matrices into the layout `kernels` read fastest (model/interleave_weights.h)
// unless --no-interleave. For commands that only run inference, after detaching or faulting in
// the files and before any Forward is made.
Status prepare_weights(const ModelArgs& args, Model& m, const KernelConfig& kernels,
                       bool skip_routed_experts = false);

// Prints "rme: error: <message>" to stderr and returns exit code 1.
int fail(const Status& st);

// The shipped data directory (eval text, calibration text, models), found at run time, never
// through a compile-time path: $RME_DATA_DIR if set, else `share/rme/data` beside an installed
// binary's prefix, else the source tree's `data/` above a build tree's `bin/`. Fails naming the
// places it looked.
Result<std::string> data_dir();

// The shipped model a bare name (no '/', not an existing path) names: data_dir()/models/<name>,
// <name>.bin or <name>.gguf; nullopt when there is none (the name is then used as a path).
std::optional<std::string> shipped_model(const std::string& name);

}  // namespace rme::cli
