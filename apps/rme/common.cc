// apps/rme: shared CLI helpers.
#include "common.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "model/bf16_weights.h"
#include "model/interleave_weights.h"
#include "moefy/baseline_routers.h"

namespace rme::cli {

void ModelArgs::add(CLI::App& app) {
  app.add_option("model", model,
                 "GGUF file, Hugging Face directory, or llama2.c .bin; or the name of a shipped "
                 "model (rme-mini, stories260K: data/models/)")
      ->required()
      ->transform([](const std::string& m) { return shipped_model(m).value_or(m); });
  app.add_option("--tokenizer", tokenizer,
                 "llama2.c tokenizer.bin (for .bin checkpoints); for GGUF / HF models, a directory "
                 "with tokenizer.json or tokenizer.model to use instead of the model's own");
  app.add_option("-t,--threads", threads, "worker threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--isa", isa,
                 "kernels' instruction set: scalar, avx2, avx512 or neon (default: RME_ISA, else "
                 "the widest this CPU runs)");
  app.add_flag("--check-weights", check_weights,
               "scan every weight for NaN/Inf and fail on one (default: norms and the first and "
               "last row of each matrix, with a warning)");
  app.add_flag("--no-interleave", no_interleave,
               "keep Q4_0 / Q8_0 matrices as the file's rows (pages shared with the page cache) "
               "instead of interleaving them 16 rows at a time for AVX-512 VNNI, which decodes "
               "faster from a private copy of the same size");
  app.add_flag("--bf16", bf16,
               "convert F16/F32 matrices to bf16 at load and multiply them with activations "
               "rounded to bf16 (AVX512-BF16): about 2x float prefill, a precision trade (bits "
               "per byte in docs/performance.md); also RME_BF16=1");
}

Result<KernelConfig> ModelArgs::kernels() const {
  auto k = KernelConfig::from_env();
  if (!k.ok()) return k.status();
  auto r = k->with_isa(isa);
  if (!r.ok() || !bf16) return r;
  auto b = r->with_bf16();
  if (!b.ok()) return Status(b.status().code(), "--bf16: " + b.status().message());
  return b;
}

Result<LoadedModel> load(const ModelArgs& args) {
  if (args.threads > 0) ThreadPool::set_default_threads(args.threads);
  LoadOptions o;
  o.tokenizer_path = args.tokenizer;
  if (args.check_weights) o.check_weights = WeightCheck::kFull;
  return load_model(args.model, o);
}

Status prepare_weights(const ModelArgs& args, Model& m, const KernelConfig& kernels,
                       bool skip_routed_experts) {
  if (kernels.bf16) {
    RME_ASSIGN_OR_RETURN(Bf16Report b, bf16_weights(m, skip_routed_experts, ThreadPool::global()));
    if (b.matrices > 0)
      log_info(m.source + ": " + std::to_string(b.matrices) + " float matrices (" +
               std::to_string(b.bytes_from >> 20) + " -> " + std::to_string(b.bytes >> 20) +
               " MiB) converted to bf16 for bf16 products (--bf16)");
  }
  if (args.no_interleave) return Status::Ok();
  RME_ASSIGN_OR_RETURN(InterleaveReport r,
                       interleave_weights(m, kernels, skip_routed_experts, ThreadPool::global()));
  if (r.matrices > 0)
    log_info(m.source + ": " + std::to_string(r.matrices) + " matrices (" +
             std::to_string(r.bytes >> 20) + " MiB) interleaved for " + kernels.describe() +
             " (--no-interleave keeps rows)");
  return Status::Ok();
}

Result<std::string> data_dir() {
  std::vector<std::string> tried;
  if (const char* env = std::getenv("RME_DATA_DIR"); env != nullptr && *env != '\0') {
    if (std::filesystem::is_directory(env)) return std::string(env);
    tried.push_back(std::string(env) + " ($RME_DATA_DIR)");
  }
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::filesystem::path bin = exe.parent_path();
    for (const std::filesystem::path& d :
         {bin.parent_path() / "share" / "rme" / "data", bin.parent_path().parent_path() / "data"}) {
      if (std::filesystem::is_directory(d / "eval")) return d.lexically_normal().string();
      tried.push_back(d.lexically_normal().string());
    }
  }
  std::string list;
  for (const auto& t : tried) list += (list.empty() ? "" : ", ") + t;
  return not_found("rme's data directory not found (looked in " + list +
                   "); set RME_DATA_DIR or pass the files explicitly");
}

std::optional<std::string> shipped_model(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || std::filesystem::exists(name)) {
    return std::nullopt;
  }
  auto dir = data_dir();
  if (!dir.ok()) return std::nullopt;
  for (const std::string& c : {name, name + ".bin", name + ".gguf"}) {
    const std::filesystem::path p = std::filesystem::path(*dir) / "models" / c;
    if (std::filesystem::exists(p)) return p.string();
  }
  return std::nullopt;
}

int fail(const Status& st) {
  std::fprintf(stderr, "rme: error: %s\n", st.message().c_str());
  return 1;
}

void RoutingArgs::add(CLI::App& app) {
  app.add_option("--routing", mode,
                 "MoE routing: router (Read-ME), oracle (dense activations), random, layer-gate, "
                 "expert:N")
      ->group("MoE");
  app.add_option("--dense", dense, "dense parent for --routing oracle (default: recorded parent)")
      ->group("MoE");
  app.add_option("--route-top-k", top_k, "experts per token (default: the model's)")
      ->check(CLI::Range(0, 64))
      ->group("MoE");
  app.add_option("--route-seed", seed, "seed of --routing random")->group("MoE");
}

Result<RoutingOptions> RoutingArgs::options() const {
  RoutingOptions o;
  o.top_k = top_k;
  o.seed = seed;
  if (mode == "router") {
    o.mode = RoutingOptions::Mode::kRouter;
  } else if (mode == "random") {
    o.mode = RoutingOptions::Mode::kRandom;
  } else if (mode.rfind("expert:", 0) == 0) {
    o.mode = RoutingOptions::Mode::kFixed;
    try {
      o.fixed_expert = std::stoi(mode.substr(7));
    } catch (const std::exception&) {
      return invalid_argument("--routing " + mode + ": expected expert:N");
    }
  } else if (mode == "oracle" || mode == "layer-gate") {
    return invalid_argument("--routing " + mode +
                            ": needs the backbone's activations, so experts are not known ahead; "
                            "use router, random or expert:N");
  } else {
    return invalid_argument("--routing " + mode +
                            ": expected router, oracle, random, layer-gate or expert:N");
  }
  return o;
}

Status RoutingArgs::apply(Forward& fwd, std::unique_ptr<Model>& dense_model) const {
  const Model& m = fwd.model();
  if (!m.moe.is_moe()) {
    if (mode != "router") return invalid_argument("--routing " + mode + ": the model is dense");
    return Status::Ok();
  }
  const int k = top_k > 0 ? top_k : m.moe.top_k;
  if (mode == "oracle") {  // analysis baselines: moefy's routers
    const std::string path = dense.empty() ? m.moe.parent : dense;
    if (path.empty()) return invalid_argument("--routing oracle needs --dense PARENT");
    RME_ASSIGN_OR_RETURN(LoadedModel lm, load_model(path));
    dense_model = std::move(lm.model);
    RME_ASSIGN_OR_RETURN(auto r, OracleRouter::create(m, *dense_model, k, fwd.max_tokens(),
                                                      fwd.pool(), fwd.kernels()));
    fwd.set_router(std::move(r));
    return Status::Ok();
  }
  if (mode == "layer-gate") {
    RME_ASSIGN_OR_RETURN(
        auto r, LayerGateRouter::create(m, k, fwd.max_tokens(), fwd.pool(), fwd.kernels()));
    fwd.set_layer_router(std::move(r));
    return Status::Ok();
  }
  RME_ASSIGN_OR_RETURN(RoutingOptions o, options());
  return fwd.set_routing(o);
}

Result<std::pair<std::string, std::vector<std::string>>> parse_domain(const std::string& s) {
  size_t eq = s.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
    return invalid_argument("'" + s + "' is not NAME=FILE[,FILE...]");
  std::vector<std::string> files;
  std::string rest = s.substr(eq + 1);
  for (size_t p = 0; p <= rest.size();) {
    size_t c = rest.find(',', p);
    if (c == std::string::npos) c = rest.size();
    if (c > p) files.push_back(rest.substr(p, c - p));
    p = c + 1;
  }
  return std::make_pair(s.substr(0, eq), files);
}

}  // namespace rme::cli
