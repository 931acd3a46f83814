// tests/train: router targets made by the engine (moefy/router_targets.h) equal the libtorch
// teacher's on rme-mini (mass shares, oracle expert, per-layer labels, FFN inputs); a build that
// was cut short finishes to the same bytes; a directory made for other options is refused.
#include "moefy/router_targets.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/file.h"
#include "formats/model_io.h"
#include "formats/text_corpus.h"
#include "moefy/carve.h"
#include "moefy/profile.h"
#include "train/moe_torch.h"
#include "train/moe_train_util.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

const std::string kRoot = RME_SOURCE_DIR;
constexpr int kSeq = 64;

// rme-mini, a corpus of three real domains in its tokens, and an MoE carved from its profile.
struct Mini {
  std::unique_ptr<Model> dense;
  Model moe;
  std::string corpus;
};

const Mini& mini() {
  static Mini* m = [] {
    auto* f = new Mini;
    LoadedModel lm = std::move(load_model(kRoot + "/data/models/rme-mini").value());
    f->dense = std::move(lm.model);
    f->corpus = test::temp_dir("targets_corpus");
    CorpusManifest man;
    man.n_vocab = f->dense->config.n_vocab;
    Profiler prof(*f->dense, ThreadPool::global(), kSeq, 0);
    std::vector<std::string> names = {"code", "math", "stories"};
    for (const std::string& d : names) {
      const std::string text = read_file(kRoot + "/data/calibration/" + d + ".txt").value();
      std::vector<int> ids = lm.tokenizer->encode(text.substr(0, 60000), true);
      std::vector<int32_t> train(ids.begin(), ids.begin() + ids.size() * 9 / 10);
      std::vector<int32_t> valid(ids.begin() + ids.size() * 9 / 10, ids.end());
      for (size_t b = 0; b + kSeq <= 4096; b += kSeq)
        EXPECT_TRUE(prof.add(d, std::span<const int>(ids.data() + b, kSeq)).ok());
      for (auto* v : {&train, &valid}) {
        const bool is_train = v == &train;
        ShardInfo s{d + (is_train ? ".train.bin" : ".valid.bin"),
                    static_cast<int64_t>(v->size()),
                    static_cast<int64_t>(v->size()) * 4,
                    1,
                    {}};
        EXPECT_TRUE(write_token_shard(f->corpus + "/" + s.file, *v, man.n_vocab).ok());
        (is_train ? man.train : man.valid)[d] = s;
      }
    }
    EXPECT_TRUE(write_manifest(f->corpus, man).ok());
    auto layout = carve_experts(prof.finish().scores(), 0.5);
    EXPECT_TRUE(layout.ok());
    f->moe = std::move(build_moe(*f->dense, *layout, names).value());
    return f;
  }();
  return *m;
}

RouterTargetSpec spec(int64_t tokens, bool gate) {
  RouterTargetSpec s;
  s.seq_len = kSeq;
  s.pool_tokens = tokens;
  s.eval_tokens = 512;
  s.gate_inputs = gate;
  return s;
}

TEST(RouterTargetsTest, EngineTargetsEqualTheLibtorchTeacherOnRmeMini) {
  const Mini& m = mini();
  const std::string dir = test::temp_dir("targets_mini");
  ASSERT_TRUE(build_router_targets(*m.dense, m.moe.moe, m.corpus, spec(16384, true), dir,
                                   ThreadPool::global(), KernelConfig::best())
                  .ok());
  auto t = RouterTargets::open(dir);
  ASSERT_TRUE(t.ok()) << t.status().message();
  const RouterTargets& tg = **t;
  ASSERT_EQ(tg.n_pool(), 16384 / kSeq);
  ASSERT_EQ(tg.valid_domains().size(), 3u);
  LlamaTorch teacher(torch_config(m.dense->config));
  teacher->load_from(*m.dense);
  teacher->eval();
  const auto masks = expert_masks(m.moe.moe);
  const int L = m.dense->config.n_layer;
  double max_score = 0, max_h2 = 0;
  int64_t tokens = 0, same_expert = 0, same_label = 0;
  auto compare = [&](const std::vector<TargetRows>& rows) {
    TargetBatch e = target_batch(tg, rows, true);
    Targets r = dense_targets(teacher, masks, e.ids);
    max_score = std::max(max_score, (e.score - r.score).abs().max().item<double>());
    same_expert += (e.score.argmax(-1) == r.score.argmax(-1)).sum().item<int64_t>();
    for (int l = 0; l < L; ++l) {
      same_label += (e.labels[l] == r.labels[l]).sum().item<int64_t>();
      // f16 storage: relative error 2^-11 of the value.
      auto err = (e.h2[l] - r.h2[l]).abs() / (r.h2[l].abs() + 1e-2);
      max_h2 = std::max(max_h2, err.max().item<double>());
    }
    tokens += e.ids.numel();
  };
  for (int64_t b = 0; b < tg.n_pool(); b += 16) {
    std::vector<TargetRows> rows;
    for (int64_t w = b; w < std::min<int64_t>(tg.n_pool(), b + 16); ++w) rows.push_back(tg.pool(w));
    compare(rows);
  }
  for (size_t d = 0; d < tg.valid_domains().size(); ++d) {
    std::vector<TargetRows> rows;
    for (int64_t w = 0; w < tg.n_valid(d); ++w) rows.push_back(tg.valid(d, w));
    compare(rows);
  }
  EXPECT_EQ(tokens, 16384 + 3 * 512);
  EXPECT_LT(max_score, 1e-4);
  EXPECT_GE(double(same_expert) / tokens, 0.999) << same_expert << " of " << tokens;
  EXPECT_GE(double(same_label) / (tokens * L), 0.999) << same_label << " of " << tokens * L;
  EXPECT_LT(max_h2, 2e-3);
  std::printf(
      "engine vs libtorch targets: max |score diff| %.2e, same oracle expert %lld/%lld, "
      "same layer labels %lld/%lld, max FFN-input rel. error %.2e\n",
      max_score, static_cast<long long>(same_expert), static_cast<long long>(tokens),
      static_cast<long long>(same_label), static_cast<long long>(tokens * L), max_h2);
}

std::map<std::string, std::string> files_of(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out[e.path().filename().string()] = read_file(e.path().string()).value();
  return out;
}

TEST(RouterTargetsTest, ABuildCutShortFinishesToTheSameBytes) {
  const Mini& m = mini();
  const std::string a = test::temp_dir("targets_a"), b = test::temp_dir("targets_b");
  const RouterTargetSpec s = spec(3 * 8192, false);  // three pool chunks
  ASSERT_TRUE(build_router_targets(*m.dense, m.moe.moe, m.corpus, s, a, ThreadPool::global(),
                                   KernelConfig::best())
                  .ok());
  ASSERT_TRUE(build_router_targets(*m.dense, m.moe.moe, m.corpus, s, b, ThreadPool::global(),
                                   KernelConfig::best())
                  .ok());
  // What a kill leaves: a chunk never written, one cut off mid-write, a stray temp file.
  std::filesystem::remove(b + "/pool-00001.rtg");
  std::filesystem::resize_file(b + "/pool-00002.rtg", 1000);
  ASSERT_TRUE(write_file_atomic(b + "/pool-00000.rtg.tmp.123", "partial").ok());
  auto cut = RouterTargets::open(b);
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("run it again"), std::string::npos)
      << cut.status().message();
  ASSERT_TRUE(build_router_targets(*m.dense, m.moe.moe, m.corpus, s, b, ThreadPool::global(),
                                   KernelConfig::best())
                  .ok());
  std::filesystem::remove(b + "/pool-00000.rtg.tmp.123");
  EXPECT_EQ(files_of(a), files_of(b));
  EXPECT_TRUE(RouterTargets::open(b).ok());
}

TEST(RouterTargetsTest, ADirectoryMadeForOtherOptionsIsRefused) {
  const Mini& m = mini();
  const std::string dir = test::temp_dir("targets_other");
  ASSERT_TRUE(build_router_targets(*m.dense, m.moe.moe, m.corpus, spec(1024, false), dir,
                                   ThreadPool::global(), KernelConfig::best())
                  .ok());
  RouterTargetSpec other = spec(1024, false);
  other.seed = 2;
  Status st = build_router_targets(*m.dense, m.moe.moe, m.corpus, other, dir, ThreadPool::global(),
                                   KernelConfig::best());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("another parent, layout, corpus or options"), std::string::npos)
      << st.message();
  // Not the parent: an MoE's layout over a model of another width.
  auto w = test::random_weights(test::tiny_config(64, 32, 2, 4, 2, 48, false), 3);
  const std::string tiny = test::temp_dir("targets_tiny");
  test::write_hf_dir(w, tiny, DType::kF32);
  auto small = load_model(tiny);
  ASSERT_TRUE(small.ok());
  st = build_router_targets(*small->model, m.moe.moe, m.corpus, spec(1024, false),
                            test::temp_dir("targets_bad"), ThreadPool::global(),
                            KernelConfig::best());
  EXPECT_NE(st.message().find("not the dense parent"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace rme
