// tests/apps: the Read-ME pipeline end to end on the shipped rme-mini — profile, moefy (and the
// all-channels invariant through files), corpus, train-router, generate, analyze-routing,
// finetune (killed and resumed to identical results; top-2 mixing), and clear errors on misuse.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <set>

#include "core/file.h"
#include "util/run_rme.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

const std::string kRoot = RME_SOURCE_DIR;
const std::string kMini = kRoot + "/data/models/rme-mini";
const std::string kCal = kRoot + "/data/calibration/";

using test::CmdResult;
CmdResult rme(const std::string& args) { return test::run_rme(args); }

std::string field(const std::string& json, const std::string& key) {
  size_t p = json.find("\"" + key + "\": ");
  if (p == std::string::npos) return "";
  p += key.size() + 4;
  return json.substr(p, json.find_first_of(",}", p) - p);
}

class MoePipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::temp_dir("moe_pipeline");
    CmdResult r =
        rme("profile " + kMini + " --domain stories=" + kCal + "stories.txt --domain code=" + kCal +
            "code.txt --tokens 1024 --seq-len 64 -o " + dir_ + "/stats.safetensors");
    ASSERT_EQ(r.code, 0) << r.err;
    r = rme("moefy " + kMini + " --stats " + dir_ + "/stats.safetensors -o " + dir_ + "/moe");
    ASSERT_EQ(r.code, 0) << r.err;
    r = rme("corpus --tokenizer " + kMini + " --out " + dir_ + "/corpus --domain stories=" + kCal +
            "stories.txt --domain code=" + kCal + "code.txt");
    ASSERT_EQ(r.code, 0) << r.err;
    r = rme("train-router " + dir_ + "/moe --corpus " + dir_ + "/corpus --out " + dir_ +
            "/moe-r --steps 3 --batch 2 --seq-len 32 --eval-tokens 64");
    ASSERT_EQ(r.code, 0) << r.err;
    router_out_ = r.out;
  }
  // `finetune ARGS B` killed after step `kill` and run again equals the straight run A (its log
  // and its exported bytes), and A's export generates.
  static void expect_resumed_equals_straight(const std::string& args, const std::string& a,
                                             const std::string& b, int kill = 5) {
    CmdResult k = rme("finetune " + args + b + " --kill-at-step " + std::to_string(kill));
    EXPECT_EQ(k.code, 128 + 9);  // `sh -c` reports the SIGKILL as exit status 137
    CmdResult r = rme("finetune " + args + b);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("resuming"), std::string::npos);
    EXPECT_EQ(read_file(a + "/train/finetune_log.csv").value(),
              read_file(b + "/train/finetune_log.csv").value());
    EXPECT_EQ(read_file(a + "/model.safetensors").value(),
              read_file(b + "/model.safetensors").value());
    CmdResult g = rme("generate " + a + " --prompt Hi --new-tokens 4");
    EXPECT_EQ(g.code, 0) << g.err;
  }
  static std::string dir_, router_out_;
};
std::string MoePipelineTest::dir_, MoePipelineTest::router_out_;

TEST_F(MoePipelineTest, MoefyReportsLayoutAndAllChannelsEqualsDense) {
  CmdResult r = rme("moefy " + kMini + " --stats " + dir_ + "/stats.safetensors --keep 1 -o " +
                    dir_ + "/all");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("FFN active 100% of dense"), std::string::npos) << r.out;
  const std::string text = " -f " + kCal + "wiki.txt --chunks 3 --ctx 64 --json";
  CmdResult dense = rme("perplexity " + kMini + text);
  CmdResult moe = rme("perplexity " + dir_ + "/all" + text + " --routing random");
  ASSERT_EQ(dense.code, 0) << dense.err;
  ASSERT_EQ(moe.code, 0) << moe.err;
  EXPECT_EQ(field(dense.out, "perplexity"), field(moe.out, "perplexity"));
  // Half the channels: worse than dense, and oracle routing beats random routing.
  CmdResult oracle = rme("perplexity " + dir_ + "/moe" + text + " --routing oracle");
  CmdResult random = rme("perplexity " + dir_ + "/moe" + text + " --routing random");
  ASSERT_EQ(oracle.code, 0) << oracle.err;
  EXPECT_GT(std::stod(field(oracle.out, "perplexity")), std::stod(field(dense.out, "perplexity")));
  EXPECT_LT(std::stod(field(oracle.out, "perplexity")), std::stod(field(random.out, "perplexity")));
  // The parent is recorded relative to the checkpoint, so oracle routing above found it from the
  // test's working directory (which is neither the checkpoint's nor where moefy ran).
  const std::string cfg = read_file(dir_ + "/moe/config.json").value();
  const std::string parent = field(cfg, "parent");
  EXPECT_EQ(parent.rfind("\"../", 0), 0u) << parent;
}

// Re-running a finished train-router resumes from its last checkpoint: the CSV logs keep every
// step (they used to restart empty) and the last evaluation is not written twice.
TEST_F(MoePipelineTest, ResumedRouterTrainingKeepsItsLogs) {
  const std::string tdir = dir_ + "/moe-r/train/";
  const std::string log_before = read_file(tdir + "router_log.csv").value();
  CmdResult r = rme("train-router " + dir_ + "/moe --corpus " + dir_ + "/corpus --out " + dir_ +
                    "/moe-r --steps 3 --batch 2 --seq-len 32 --eval-tokens 64");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(tdir + "router_log.csv").value(), log_before);
  const std::string val = read_file(tdir + "router_val.csv").value();
  std::vector<std::string> steps;
  for (size_t at = val.find('\n'); at != std::string::npos && at + 1 < val.size();
       at = val.find('\n', at + 1))
    steps.push_back(val.substr(at + 1, val.find(',', at + 1) - at - 1));
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.back(), "3");
  EXPECT_EQ(std::set<std::string>(steps.begin(), steps.end()).size(), steps.size()) << val;
}

TEST_F(MoePipelineTest, TrainedRouterGeneratesAndIsAnalyzed) {
  EXPECT_NE(router_out_.find("layer-gate"), std::string::npos) << router_out_;
  CmdResult g =
      rme("generate " + dir_ + "/moe-r --prompt \"Once upon a time\" --new-tokens 8 --temp 0");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_GT(g.out.size(), std::string("Once upon a time").size());
  CmdResult lg = rme("generate " + dir_ + "/moe-r --prompt Hi --new-tokens 4 --routing layer-gate");
  EXPECT_EQ(lg.code, 0) << lg.err;
  CmdResult a = rme("analyze-routing " + dir_ + "/moe-r --routing layer-gate --file " + kCal +
                    "stories.txt --tokens 256 -o " + dir_ + "/an");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.out.find("mutual information"), std::string::npos);
  for (const char* f : {"routing.csv", "expert_load.csv", "locality.csv", "transitions.csv"})
    EXPECT_TRUE(file_exists(dir_ + "/an/" + f)) << f;
}

TEST_F(MoePipelineTest, FinetuneKilledAndResumedMatchesStraightRun) {
  const std::string args = dir_ + "/moe-r --corpus " + dir_ +
                           "/corpus --rounds 2 --steps 3 --router-steps 2 --batch 2 --seq-len 32 "
                           "--eval-tokens 64 --checkpoint-every 2 --export-type f32 --out ";
  CmdResult a = rme("finetune " + args + dir_ + "/ft-a");
  ASSERT_EQ(a.code, 0) << a.err;
  expect_resumed_equals_straight(args, dir_ + "/ft-a", dir_ + "/ft-b");
}

// The bounded-memory path (one expert at a time, 16-bit storage, router phases from the targets
// train-router made), whole or a group of layers at a time (the shared experts then train with
// their group): killed and resumed equals the straight run, and its export generates.
TEST_F(MoePipelineTest, BoundedFinetuneKilledAndResumedMatchesStraightRun) {
  for (const std::string groups : {"1", "2"}) {
    SCOPED_TRACE("layer groups " + groups);
    const std::string args = dir_ + "/moe-r --corpus " + dir_ +
                             "/corpus --memory bounded --rounds 2 --steps 4 --router-steps 2 "
                             "--batch 2 --seq-len 32 --eval-tokens 64 --checkpoint-every 3 "
                             "--export-type f32 --round-targets dense --layer-groups " +
                             groups + " --out ";
    const std::string a_dir = dir_ + "/bft-a" + groups, b_dir = dir_ + "/bft-b" + groups;
    CmdResult a = rme("finetune " + args + a_dir);
    ASSERT_EQ(a.code, 0) << a.err;
    EXPECT_NE(a.err.find("bounded memory"), std::string::npos) << a.err;
    EXPECT_NE(a.err.find("expert 1"), std::string::npos) << a.err;  // experts took turns
    EXPECT_EQ(a.err.find("groups of layers") != std::string::npos, groups == "2") << a.err;
    expect_resumed_equals_straight(args, a_dir, b_dir);
  }
  CmdResult bad = rme("finetune " + dir_ + "/moe-r --corpus " + dir_ +
                      "/corpus --memory bounded --rounds 2 --steps 2 --router-steps 1 --batch 2 "
                      "--seq-len 32 --round-targets dense --targets " +
                      dir_ + "/none --out " + dir_ + "/bft-c");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("--targets"), std::string::npos) << bad.err;
}

// Bounded router rounds distilled from the current experts (the default): the targets are made
// once at the round's start and kept in the checkpoint, so a run killed in the middle of the
// router phase (checkpoint at step 6 of 5..7) resumes with the same targets, not ones made anew
// under the router it had tuned meanwhile. Killed at step 2, the end of expert 0's turn, it
// resumes into expert 1's. The targets are not the dense parent's: the logs differ.
TEST_F(MoePipelineTest, BoundedRouterRoundsFromCurrentExpertsResumeMidPhase) {
  const std::string args = dir_ + "/moe-r --corpus " + dir_ +
                           "/corpus --memory bounded --rounds 2 --steps 4 --router-steps 3 "
                           "--batch 2 --seq-len 32 --eval-tokens 64 --checkpoint-every 2 "
                           "--round-target-tokens 160 --export-type f32 --out ";
  const std::string a_dir = dir_ + "/cft-a", b_dir = dir_ + "/cft-b";
  CmdResult a = rme("finetune " + args + a_dir);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.err.find("round 1 router targets from the current experts, 192 tokens"),
            std::string::npos)
      << a.err;
  expect_resumed_equals_straight(args, a_dir, b_dir, 6);
  expect_resumed_equals_straight(args, a_dir, dir_ + "/cft-c", 2);
  CmdResult d = rme("finetune " + dir_ + "/moe-r --corpus " + dir_ +
                    "/corpus --memory bounded --rounds 2 --steps 4 --router-steps 3 --batch 2 "
                    "--seq-len 32 --eval-tokens 64 --round-targets dense --export-type f32 --out " +
                    dir_ + "/cft-d");
  ASSERT_EQ(d.code, 0) << d.err;
  const std::string log_a = read_file(a_dir + "/train/finetune_log.csv").value();
  const std::string log_d = read_file(dir_ + "/cft-d/train/finetune_log.csv").value();
  EXPECT_NE(log_a, log_d);
}

TEST_F(MoePipelineTest, FinetuneTopTwoMixesExpertsAndExportsTheWidth) {
  const std::string args = " --corpus " + dir_ +
                           "/corpus --rounds 1 --steps 2 --batch 2 --seq-len 32 --eval-tokens 64 "
                           "--export-type f32 --out ";
  CmdResult one = rme("finetune " + dir_ + "/moe-r" + args + dir_ + "/ft-k1");
  ASSERT_EQ(one.code, 0) << one.err;
  CmdResult two = rme("finetune " + dir_ + "/moe-r --top-k 2" + args + dir_ + "/ft-k2");
  ASSERT_EQ(two.code, 0) << two.err;
  // Same seed, same batches: only the mixing differs, so the first losses differ.
  const std::string log1 = read_file(dir_ + "/ft-k1/train/finetune_log.csv").value();
  const std::string log2 = read_file(dir_ + "/ft-k2/train/finetune_log.csv").value();
  EXPECT_NE(log1, log2);
  CmdResult info = rme("info " + dir_ + "/ft-k2");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("2 experts, top-2"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("at top-1:"), std::string::npos) << info.out;
  CmdResult bad = rme("finetune " + dir_ + "/moe-r --top-k 3" + args + dir_ + "/ft-k3");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("--top-k 3 outside 1..2"), std::string::npos) << bad.err;
  bad = rme("finetune " + kMini + " --top-k 2" + args + dir_ + "/ft-dense");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("--top-k needs an MoE"), std::string::npos) << bad.err;
}

TEST_F(MoePipelineTest, MisuseGivesClearErrors) {
  CmdResult r = rme("train-router " + kMini + " --corpus " + dir_ + "/corpus --out " + dir_ + "/x");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not an MoE"), std::string::npos) << r.err;
  r = rme("generate " + dir_ + "/moe --prompt Hi --new-tokens 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no router"), std::string::npos) << r.err;
  r = rme("generate " + dir_ + "/moe --prompt Hi --routing layer-gate");
  EXPECT_EQ(r.code, 1);
  r = rme("generate " + dir_ + "/moe-r --prompt Hi --routing sideways");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("expected router"), std::string::npos) << r.err;
  r = rme("generate " + dir_ + "/moe-r --prompt Hi --routing expert:99");
  EXPECT_EQ(r.code, 1);
  r = rme("moefy " + kRoot + "/data/models/stories260K.bin --tokenizer " + kRoot +
          "/data/models/tok512.bin --stats " + dir_ + "/stats.safetensors -o " + dir_ + "/bad");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("statistics are for 6 layers"), std::string::npos) << r.err;
  r = rme("generate " + kMini + " --prompt Hi --routing oracle");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("dense"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace rme
