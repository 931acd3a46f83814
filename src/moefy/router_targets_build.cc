// moefy: router targets — the engine pass over the dense parent that makes them.
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <span>

#include "core/hash.h"
#include "core/json.h"
#include "core/progress.h"
#include "formats/text_corpus.h"
#include "model/forward.h"
#include "model/moe.h"
#include "moefy/router_target_chunk.h"
#include "moefy/router_targets.h"
#include "tensor/half.h"

namespace rme {

namespace {

using json = nlohmann::json;

// Where a window's tokens come from: a domain's train (pool) or valid split.
struct WindowRef {
  int domain;
  int64_t offset;
};

// The training windows: domain by weight, offset uniform, a pure function of the seed (the same
// law as the trainer's batches, drawn once).
std::vector<WindowRef> plan_pool(const std::vector<Domain>& domains, const RouterTargetSpec& s) {
  std::mt19937_64 rng(splitmix(s.seed * 0x5851f42d4c957f2dull + 17));
  double total = 0;
  for (const auto& d : domains) total += d.weight;
  std::uniform_real_distribution<double> u(0, total);
  std::vector<WindowRef> out;
  const int64_t T = s.seq_len + 1;  // as the trainer draws: one token of room for a target
  for (int64_t i = 0; i < s.pool_windows(); ++i) {
    double r = u(rng);
    size_t di = 0;
    while (di + 1 < domains.size() && (r -= domains[di].weight) >= 0) ++di;
    while (domains[di].weight == 0) ++di;
    const int64_t n = domains[di].train.size();
    out.push_back({static_cast<int>(di), static_cast<int64_t>(rng() % uint64_t(n - T))});
  }
  return out;
}

// The first windows of a validation split, as the trainers' valid_windows cut them.
int64_t n_valid_windows(const TokenShard& s, int seq_len, int64_t eval_tokens) {
  return std::max<int64_t>(1, std::min<int64_t>(eval_tokens / seq_len, (s.size() - 1) / seq_len));
}

// Runs the dense parent over windows and fills one chunk's arrays. Owns its forward pass, caches
// and buffers; not thread-safe (the forward uses the pool).
class TargetEngine {
 public:
  TargetEngine(const Model& dense, const MoeConfig& moe, int seq_len, bool gate, ThreadPool& pool,
               const KernelConfig& kernels)
      : moe_(moe),
        T_(seq_len),
        E_(moe.n_expert),
        L_(dense.config.n_layer),
        D_(gate ? dense.config.n_embd : 0),
        group_(std::max(1, 512 / seq_len)),
        fwd_(dense, group_ * seq_len, pool, kernels) {
    for (int g = 0; g < group_; ++g) kv_.push_back(std::make_unique<KvCache>(dense, T_));
    mass_.resize(static_cast<size_t>(group_) * T_ * E_);
    fwd_.set_ffn_probe([this](int layer, int n, const float* act, int64_t width) {
      std::fill_n(mass_.begin(), static_cast<size_t>(n) * E_, 0.0f);
      add_expert_mass(moe_, layer, act, n, width, mass_.data());
      for (int t = 0; t < n; ++t) {
        const float* m = &mass_[static_cast<size_t>(t) * E_];
        float* s = score_ + static_cast<size_t>(t) * E_;
        for (int e = 0; e < E_; ++e) s[e] += m[e];
        labels_[static_cast<size_t>(t) * L_ + layer] =
            static_cast<uint8_t>(std::max_element(m, m + E_) - m);  // first maximum, as torch
      }
    });
    if (D_ > 0)
      fwd_.set_ffn_input_probe([this](int layer, int n, const float* x, int64_t width) {
        for (int t = 0; t < n; ++t) {
          uint16_t* g = gate_ + (static_cast<size_t>(t) * L_ + layer) * D_;
          for (int64_t j = 0; j < width; ++j) g[j] = f32_to_f16(x[t * width + j]);
        }
      });
  }

  // Fills ids/score/labels/gate for windows (tokens from `shard_of(domain)`); calls tick(tokens)
  // after each engine step.
  template <typename ShardOf, typename Tick>
  Status run(std::span<const WindowRef> windows, ShardOf shard_of, int32_t* ids, float* score,
             uint8_t* labels, uint16_t* gate, Tick tick) {
    const size_t n_tok = windows.size() * static_cast<size_t>(T_);
    std::fill_n(score, n_tok * E_, 0.0f);
    std::vector<int> tokens(static_cast<size_t>(group_) * T_);
    for (size_t w0 = 0; w0 < windows.size(); w0 += group_) {
      const int g = static_cast<int>(std::min<size_t>(group_, windows.size() - w0));
      std::vector<SeqChunk> chunks(g);
      for (int i = 0; i < g; ++i) {
        const TokenShard& s = shard_of(windows[w0 + i].domain);
        for (int t = 0; t < T_; ++t) {
          tokens[i * T_ + t] = s[windows[w0 + i].offset + t];
          ids[(w0 + i) * T_ + t] = tokens[i * T_ + t];
        }
        chunks[i].tokens = std::span<const int>(&tokens[i * T_], T_);
        chunks[i].kv = kv_[i]->view();
      }
      score_ = score + w0 * T_ * E_;
      labels_ = labels + w0 * T_ * L_;
      gate_ = gate ? gate + w0 * T_ * L_ * D_ : nullptr;
      RME_RETURN_IF_ERROR(fwd_.run_batch(chunks, nullptr));
      tick(static_cast<int64_t>(g) * T_);
    }
    const float inv = 1.0f / static_cast<float>(L_);
    for (size_t i = 0; i < n_tok * E_; ++i) score[i] *= inv;
    return Status::Ok();
  }

 private:
  const MoeConfig& moe_;
  const int T_, E_, L_, D_, group_;
  Forward fwd_;
  std::vector<std::unique_ptr<KvCache>> kv_;
  std::vector<float> mass_;
  float* score_ = nullptr;
  uint8_t* labels_ = nullptr;
  uint16_t* gate_ = nullptr;
};

struct Plan {
  std::vector<Domain> domains;
  std::vector<size_t> valid_domains;  // indices of domains with a validation split
  std::vector<int64_t> valid_counts;
};

Result<Plan> plan(const std::string& corpus_dir, int seq_len, int64_t eval_tokens, int n_vocab) {
  Plan p;
  int corpus_vocab = 0;
  RME_ASSIGN_OR_RETURN(p.domains, open_domains(corpus_dir, seq_len, {}, corpus_vocab));
  if (corpus_vocab != n_vocab)
    return invalid_argument(corpus_dir + ": corpus vocabulary " + std::to_string(corpus_vocab) +
                            " != model vocabulary " + std::to_string(n_vocab));
  for (size_t d = 0; d < p.domains.size(); ++d)
    if (p.domains[d].has_valid) {
      p.valid_domains.push_back(d);
      p.valid_counts.push_back(n_valid_windows(p.domains[d].valid, seq_len, eval_tokens));
    }
  return p;
}

}  // namespace

Result<std::string> router_target_fingerprint(const Model& dense, const MoeConfig& moe,
                                              const std::string& corpus_dir,
                                              const RouterTargetSpec& s) {
  // The parent by path and content (one embedding row and the last layer's first down_proj row),
  // the expert layout by its channel lists, the corpus by path and token counts.
  uint64_t wh = 0;
  const MatView& e = dense.weights.tok_embd;
  wh = hash_bytes(e.data, dtype_row_bytes(e.dtype, e.n_in), wh);
  const MatView& dn = dense.weights.layers.back().w_down;
  wh = hash_bytes(dn.data, dtype_row_bytes(dn.dtype, dn.n_in), wh);
  uint64_t mh = hash_bytes(&moe.n_expert, sizeof(moe.n_expert));
  for (const auto& ex : moe.expert_channels)
    for (const auto& l : ex) mh = hash_bytes(l.data(), l.size() * sizeof(int), mh);
  RME_ASSIGN_OR_RETURN(CorpusManifest man, read_manifest(corpus_dir));
  json corpus_tokens;
  for (const auto& [name, info] : man.train) corpus_tokens[name + ".train"] = info.tokens;
  for (const auto& [name, info] : man.valid) corpus_tokens[name + ".valid"] = info.tokens;
  std::error_code ec;
  auto abs = [&](const std::string& p) {
    auto c = std::filesystem::weakly_canonical(p, ec);
    return ec ? p : c.string();
  };
  char hex[40];
  std::snprintf(hex, sizeof(hex), "%016llx-%016llx", static_cast<unsigned long long>(wh),
                static_cast<unsigned long long>(mh));
  return json{{"format", 1},
              {"dense", abs(dense.source)},
              {"weights_and_layout", hex},
              {"corpus", abs(corpus_dir)},
              {"corpus_tokens", corpus_tokens},
              {"seq_len", s.seq_len},
              {"pool_windows", s.pool_windows()},
              {"eval_tokens", s.eval_tokens},
              {"seed", s.seed},
              {"gate_inputs", s.gate_inputs}}
      .dump();
}

Status build_router_targets(const Model& dense, const MoeConfig& moe, const std::string& corpus_dir,
                            const RouterTargetSpec& spec, const std::string& dir, ThreadPool& pool,
                            const KernelConfig& kernels) {
  const LlamaConfig& c = dense.config;
  if (dense.moe.is_moe() || !c.n_ff_layer.empty() || c.n_ff != moe.parent_n_ff ||
      static_cast<int>(moe.shared_channels.size()) != c.n_layer)
    return invalid_argument(dense.source + ": not the dense parent of this MoE (layers " +
                            std::to_string(c.n_layer) + ", FFN width " + std::to_string(c.n_ff) +
                            " vs " + std::to_string(moe.parent_n_ff) + ")");
  if (moe.n_expert < 1 || moe.n_expert > 255)
    return invalid_argument("router targets: 1..255 experts, not " + std::to_string(moe.n_expert));
  if (spec.seq_len < 2 || spec.seq_len > c.n_ctx)
    return invalid_argument("router targets: --seq-len " + std::to_string(spec.seq_len) +
                            " outside 2.." + std::to_string(c.n_ctx));
  RME_ASSIGN_OR_RETURN(std::string fp, router_target_fingerprint(dense, moe, corpus_dir, spec));
  RME_ASSIGN_OR_RETURN(Plan p, plan(corpus_dir, spec.seq_len, spec.eval_tokens, c.n_vocab));
  const int T = spec.seq_len, E = moe.n_expert, L = c.n_layer;
  const int D = spec.gate_inputs ? c.n_embd : 0;
  const int64_t per_chunk = std::max<int64_t>(1, target_chunk::kChunkTokens / T);
  const int64_t n_pool = spec.pool_windows();
  const int64_t n_chunks = (n_pool + per_chunk - 1) / per_chunk;

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_error(dir + ": " + ec.message());
  const std::string man_path = dir + "/manifest.json";
  json man = {{"fingerprint", fp},
              {"seq_len", T},
              {"n_expert", E},
              {"n_layer", L},
              {"gate_dim", D},
              {"pool_windows", n_pool},
              {"chunk_windows", per_chunk},
              {"valid_windows", p.valid_counts}};
  std::vector<std::string> valid_names;
  for (size_t d : p.valid_domains) valid_names.push_back(p.domains[d].name);
  man["valid_domains"] = valid_names;
  if (file_exists(man_path)) {
    RME_ASSIGN_OR_RETURN(std::string text, read_file(man_path));
    RME_ASSIGN_OR_RETURN(json old, parse_json(text, man_path));
    if (!old.contains("fingerprint") || old["fingerprint"] != fp)
      return invalid_argument(dir +
                              ": router targets made for another parent, layout, corpus or "
                              "options; delete it or choose another directory");
  } else {
    RME_RETURN_IF_ERROR(write_file_atomic(man_path, man.dump(1)));
  }

  // What is left to do: the validation chunk and the pool chunks not yet (whole) on disk.
  const std::vector<WindowRef> pool_refs = plan_pool(p.domains, spec);
  std::vector<WindowRef> valid_refs;
  for (size_t i = 0; i < p.valid_domains.size(); ++i)
    for (int64_t w = 0; w < p.valid_counts[i]; ++w)
      valid_refs.push_back({static_cast<int>(p.valid_domains[i]), w * T});
  // Chunk k's windows (k = -1: validation) as a range of valid_refs or pool_refs.
  auto windows_of = [&](int64_t chunk) -> std::span<const WindowRef> {
    if (chunk < 0) return valid_refs;
    const int64_t b = chunk * per_chunk, e = std::min(n_pool, b + per_chunk);
    return std::span<const WindowRef>(pool_refs).subspan(b, e - b);
  };
  auto path_of = [&](int64_t chunk) {
    return dir + "/" + (chunk < 0 ? std::string("valid.rtg") : target_chunk::pool_name(chunk));
  };
  std::vector<int64_t> missing;  // chunks not (whole) on disk yet
  int64_t total = 0, done = 0;
  for (int64_t k = valid_refs.empty() ? 0 : -1; k < n_chunks; ++k) {
    const int64_t w = static_cast<int64_t>(windows_of(k).size());
    total += w * T;
    if (target_chunk::open(path_of(k), target_chunk::layout(w, T, E, L, D)).ok())
      done += w * T;
    else
      missing.push_back(k);
  }
  if (missing.empty()) return Status::Ok();
  if (done > 0)
    std::fprintf(stderr, "router targets: resuming %s (%lld of %lld tokens done)\n", dir.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total));
  TargetEngine engine(dense, moe, T, D > 0, pool, kernels);
  Progress progress("router targets", total, "tok", done);
  for (int64_t k : missing) {
    const std::span<const WindowRef> refs = windows_of(k);
    const target_chunk::Layout l =
        target_chunk::layout(static_cast<int64_t>(refs.size()), T, E, L, D);
    const size_t n = refs.size() * static_cast<size_t>(T);
    std::vector<int32_t> ids(n);
    std::vector<float> score(n * E);
    std::vector<uint8_t> labels(n * L);
    std::vector<uint16_t> gate(n * L * D);
    auto shard = [&](int d) -> const TokenShard& {
      return k < 0 ? p.domains[d].valid : p.domains[d].train;
    };
    RME_RETURN_IF_ERROR(engine.run(refs, shard, ids.data(), score.data(), labels.data(),
                                   D > 0 ? gate.data() : nullptr, [&](int64_t t) {
                                     done += t;
                                     progress.update(done);
                                   }));
    json extra = {{"split", k < 0 ? "valid" : "train"}};
    RME_RETURN_IF_ERROR(target_chunk::write(path_of(k), l, extra, ids, score, labels, gate));
  }
  progress.finish();
  return Status::Ok();
}

}  // namespace rme
