// tests/train: a run killed with SIGKILL and re-run with the same command continues from its
// last checkpoint and reproduces the uninterrupted run's loss trajectory exactly.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "core/file.h"
#include "formats/text_corpus.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

// A corpus whose tokens are the bytes of real text (vocabulary 256), two domains.
std::string make_corpus() {
  const std::string dir = test::temp_dir("resume_corpus");
  const std::string text = read_file(std::string(RME_SOURCE_DIR) + "/README.md").value();
  CorpusManifest m;
  m.n_vocab = 256;
  m.tokenizer = "";
  for (const char* name : {"a", "b"}) {
    std::vector<int32_t> train, valid;
    const size_t half = text.size() / 2;
    const size_t from = std::string(name) == "a" ? 0 : half;
    for (size_t i = from; i < from + half; ++i)
      (i < from + half * 9 / 10 ? train : valid).push_back(static_cast<uint8_t>(text[i]));
    for (auto* v : {&train, &valid}) {
      const bool is_train = v == &train;
      ShardInfo s{std::string(name) + (is_train ? ".train.bin" : ".valid.bin"),
                  static_cast<int64_t>(v->size()),
                  static_cast<int64_t>(v->size()),
                  1,
                  {}};
      EXPECT_TRUE(write_token_shard(dir + "/" + s.file, *v, 256).ok());
      (is_train ? m.train : m.valid)[name] = s;
    }
  }
  EXPECT_TRUE(write_manifest(dir, m).ok());
  std::ofstream(dir + "/config.json")
      << R"({"model": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_head_kv": 2,
    "n_ff": 64, "n_ctx": 32, "tied_output": false}, "seq_len": 32, "batch_size": 4, "grad_accum": 2,
    "steps": 24, "warmup_steps": 4, "lr": 3e-3, "min_lr": 3e-4, "eval_every": 8, "eval_tokens": 256,
    "checkpoint_every": 5, "mixture": {"a": 2, "b": 1}, "seed": 7, "threads": 2})";
  return dir;
}

int train(const std::string& corpus, const std::string& out, int kill_at) {
  std::string cmd = std::string(RME_TRAIN_BIN) + " train --config " + corpus +
                    "/config.json --corpus " + corpus + " --out " + out + " --export-type f32" +
                    (kill_at > 0 ? " --kill-at-step " + std::to_string(kill_at) : "") + " 2>" +
                    out + ".log";
  int st = std::system(cmd.c_str());
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(ResumeTest, KilledRunResumesToTheSameLossTrajectory) {
  const std::string corpus = make_corpus();
  const std::string dir = test::temp_dir("resume_runs");
  ASSERT_EQ(train(corpus, dir + "/straight", -1), 0);
  // `sh -c` reports the child's SIGKILL as exit status 137.
  EXPECT_EQ(train(corpus, dir + "/killed", 17), 128 + 9);
  EXPECT_FALSE(file_exists(dir + "/killed/model/model.safetensors"));
  const std::string partial = read_file(dir + "/killed/train_log.csv").value();
  EXPECT_NE(partial.find("\n15,"), std::string::npos);  // checkpointed at 15
  EXPECT_EQ(partial.find("\n16,"), std::string::npos);  // 16 and 17 were lost with the process
  ASSERT_EQ(train(corpus, dir + "/killed", -1), 0);
  EXPECT_NE(read_file(dir + "/killed.log").value().find("resuming"), std::string::npos);
  EXPECT_EQ(read_file(dir + "/killed/train_log.csv").value(),
            read_file(dir + "/straight/train_log.csv").value());
  EXPECT_EQ(read_file(dir + "/killed/val_log.csv").value(),
            read_file(dir + "/straight/val_log.csv").value());
  EXPECT_EQ(read_file(dir + "/killed/model/model.safetensors").value(),
            read_file(dir + "/straight/model/model.safetensors").value());
}

// A checkpoint that cannot be written whole (the disk fills: here a file size limit, EFBIG)
// ends the run with exit 1 and a message, not libtorch's abort; no temp file is left and the
// previous checkpoint is byte for byte what it was.
TEST(ResumeTest, AFullDiskFailsTheRunCleanlyAndKeepsTheLastCheckpoint) {
  const std::string corpus = make_corpus();
  const std::string dir = test::temp_dir("resume_full_disk");
  EXPECT_EQ(train(corpus, dir + "/run", 6), 128 + 9);  // checkpointed at 5
  const std::string before = read_file(dir + "/run/checkpoint.pt").value();
  ASSERT_GT(before.size(), 8192u);
  // bash's `ulimit -f` counts KiB; a file may grow to about half the checkpoint.
  const std::string cmd = "bash -c \"trap '' XFSZ; ulimit -f " +
                          std::to_string(before.size() / 2048) + "; exec " + RME_TRAIN_BIN +
                          " train --config " + corpus + "/config.json --corpus " + corpus +
                          " --out " + dir + "/run --export-type f32\" 2>" + dir + "/run.log";
  const int st = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st)) << "killed by a signal: " << read_file(dir + "/run.log").value();
  EXPECT_EQ(WEXITSTATUS(st), 1) << read_file(dir + "/run.log").value();
  const std::string log = read_file(dir + "/run.log").value();
  EXPECT_NE(log.find("checkpoint.pt"), std::string::npos) << log;
  EXPECT_NE(log.find("File too large"), std::string::npos) << log;
  EXPECT_EQ(read_file(dir + "/run/checkpoint.pt").value(), before);
  for (const auto& e : std::filesystem::directory_iterator(dir + "/run"))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(ResumeTest, ChangedConfigIsRefused) {
  const std::string corpus = make_corpus();
  const std::string dir = test::temp_dir("resume_changed");
  EXPECT_EQ(train(corpus, dir + "/run", 6), 128 + 9);
  std::string cfg = read_file(corpus + "/config.json").value();
  cfg.replace(cfg.find("\"seed\": 7"), 9, "\"seed\": 8");
  std::ofstream(corpus + "/config.json") << cfg;
  EXPECT_EQ(train(corpus, dir + "/run", -1), 1);
  EXPECT_NE(read_file(dir + "/run.log").value().find("different config"), std::string::npos);
}

}  // namespace
}  // namespace rme
