// Tests: the CLI's commands called as functions (commands.h), in-process — the golden story
// through run_generate, run_cache_sim on a trace the serving loop's writer produced, failures as
// exit codes, and shipped-model names.
#include "commands.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "core/file.h"
#include "scheduler/expert_trace.h"
#include "util/tiny_model.h"

namespace rme::cli {
namespace {

const std::string kRoot = RME_SOURCE_DIR;

TEST(CommandsTest, RunGenerateMatchesTheGoldenStory) {
  std::string g = read_file(kRoot + "/tests/golden/stories260K_golden.md").value();
  size_t b = g.find("<<<\n") + 4, e = g.find(">>>", b);
  GenerateArgs a;
  a.model.model = kRoot + "/data/models/stories260K.bin";
  a.model.tokenizer = kRoot + "/data/models/tok512.bin";
  a.prompt = "Once upon a time";
  a.tokens = 64;
  a.sampling.temperature = 0;
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  const int code = run_generate(a);
  const std::string out = testing::internal::GetCapturedStdout();
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, g.substr(b, e - b));
}

TEST(CommandsTest, RunCacheSimReadsTheServingTrace) {
  const std::string dir = test::temp_dir("commands_cache_sim");
  const std::vector<StepRecord> steps = {{0, 4, 2, {0, 1}, 0.01, 0.01, 0, 0},
                                         {1, 4, 2, {1, 2}, 0.01, 0.01, 0, 0},
                                         {2, 4, 2, {0, 1}, 0.01, 0.01, 0, 0}};
  ASSERT_TRUE(write_step_trace(dir + "/steps.csv", steps).ok());
  CacheSimArgs a;
  a.trace = dir + "/steps.csv";
  a.capacity = {2};
  a.policy = "belady";
  a.out = dir + "/sim";
  testing::internal::CaptureStdout();
  EXPECT_EQ(run_cache_sim(a), 0);
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("belady"), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(dir + "/sim.csv"));
  // A missing trace is exit code 1 with the reason on stderr, not an exception.
  a.trace = dir + "/missing.csv";
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_cache_sim(a), 1);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("rme: error:"), std::string::npos);
}

TEST(CommandsTest, ShippedModelNames) {
  setenv("RME_DATA_DIR", (kRoot + "/data").c_str(), 1);
  EXPECT_EQ(shipped_model("rme-mini"), kRoot + "/data/models/rme-mini");
  EXPECT_EQ(shipped_model("stories260K"), kRoot + "/data/models/stories260K.bin");
  EXPECT_EQ(shipped_model("no-such-model"), std::nullopt);
  EXPECT_EQ(shipped_model("./rme-mini"), std::nullopt);  // a path stays a path
  unsetenv("RME_DATA_DIR");
}

}  // namespace
}  // namespace rme::cli
