// tests/server: a checkpoint truncated or rewritten under a running server — the affected
// requests fail with an error (never wrong tokens, never SIGBUS), and service resumes with the
// same tokens once the file is whole again.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/file.h"
#include "formats/model_io.h"
#include "model/random_model.h"
#include "moefy/router_init.h"
#include "server/openai.h"
#include "server/serving_loop.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

std::string slurp(const std::string& p) { return read_file(p).value(); }
void dump(const std::string& p, const std::string& s) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);  // in place, same inode
  f << s;
}

TEST(MappedFileTest, DetachedMappingSurvivesTruncation) {
  const std::string path = test::temp_dir("detach") + "/f.bin";
  std::string bytes(3 * 4096 + 100, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  std::ofstream(path, std::ios::binary) << bytes;
  auto f = MappedFile::open(path).value();
  ASSERT_TRUE(f->detach({{4096 - 10, 4096 + 20}}).ok());  // page 2 lies wholly inside the hole
  ASSERT_EQ(::truncate(path.c_str(), 0), 0);
  const char* d = reinterpret_cast<const char*>(f->data());
  EXPECT_EQ(std::string(d, 4096), bytes.substr(0, 4096));  // partial hole pages are copied
  EXPECT_EQ(d[4096], 0);                                   // the whole page never was
  EXPECT_EQ(d[2 * 4096 - 1], 0);
  EXPECT_EQ(std::string(d + 2 * 4096, 4096 + 100), bytes.substr(2 * 4096));
  // A file whose size changed since open() is refused, the mapping unchanged.
  std::ofstream(path, std::ios::binary) << bytes;
  auto g = MappedFile::open(path).value();
  ASSERT_EQ(::truncate(path.c_str(), 4096), 0);
  EXPECT_FALSE(g->detach().ok());
}

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ThreadPool pool(2);
    LlamaConfig c = test::tiny_config(96, 64, 2, 4, 2, 256, false);
    c.n_ctx = 128;
    path_ = test::temp_dir("fault") + "/moe.gguf";
    Model moe = random_moe(c, 4, 0.5, 0.25, DType::kQ8_0, 21, pool);
    moe.router = random_router(c, 4, default_router_shape(c), 23);
    ASSERT_TRUE(write_gguf_model(moe, nullptr, path_, std::nullopt).ok());
    good_ = slurp(path_);
    for (int i = 0; i < 40; ++i) request_.prompt.push_back((i * 37) % 96);
    request_.max_new = 12;
    request_.sampling.temperature = 0;
    request_.ignore_eos = true;
  }
  // Runs the request to its end; tokens, and the error message if it failed.
  std::pair<std::vector<int>, std::string> run(ServingLoop& loop) {
    auto s = loop.submit(request_);
    for (int guard = 0; guard < 1000 && loop.step().value(); ++guard) {
    }
    std::vector<int> toks;
    StreamToken t;
    while (s->next(&t, 0)) toks.push_back(t.id);
    return {toks, s->finished() == FinishReason::kError ? s->error().message() : ""};
  }
  std::string path_, good_;
  RequestParams request_;
};

TEST_F(FaultTest, ChangedCheckpointFailsRequestsUntilWholeAgain) {
  auto loaded = load_model(path_);
  ASSERT_TRUE(loaded.ok());
  const Model& m = *loaded->model;
  ThreadPool pool(2);
  ExpertStoreOptions probe;
  probe.budget_bytes = int64_t{1} << 30;
  ServingOptions so;
  so.expert_cache_bytes = ExpertStore::open(m, probe).value()->expert_bytes();  // one resident
  auto loop = ServingLoop::create(m, pool, {}, so).value();
  ASSERT_TRUE(detach_model_files(m, /*skip_experts=*/true).ok());
  const auto [want, ok_error] = run(*loop);
  ASSERT_EQ(ok_error, "");
  ASSERT_EQ(want.size(), 12u);

  ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(good_.size() / 2)), 0);
  auto [t1, e1] = run(*loop);
  EXPECT_NE(e1.find("short read"), std::string::npos) << e1;  // an error, not garbage or SIGBUS
  // What an HTTP client is told (a 500): the file and the cause, not the server's directories.
  const std::string told = redact_paths(e1);
  EXPECT_EQ(told.find(path_.substr(0, path_.rfind('/'))), std::string::npos) << told;
  EXPECT_EQ(told.find('/'), std::string::npos) << told;
  EXPECT_NE(told.find("moe.gguf"), std::string::npos) << told;
  EXPECT_NE(told.find("short read"), std::string::npos) << told;

  std::string flipped = good_;  // same size, every byte of the second half changed
  for (size_t i = good_.size() / 2; i < good_.size(); ++i)
    flipped[i] = static_cast<char>(~flipped[i]);
  dump(path_, flipped);
  auto [t2, e2] = run(*loop);
  EXPECT_NE(e2.find("changed on disk"), std::string::npos) << e2;

  dump(path_, good_);
  auto [t3, e3] = run(*loop);
  EXPECT_EQ(e3, "");
  EXPECT_EQ(t3, want);  // whole again: the same tokens
}

}  // namespace
}  // namespace rme
