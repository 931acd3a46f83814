// tests/apps: the rme binary end to end — pinned golden story, --help for every command, exit
// codes on bad input, logits .npy shape, convert round trip, bench-serve against rme serve.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "formats/npy.h"
#include "util/run_rme.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

const std::string kRoot = RME_SOURCE_DIR;
const std::string kModel =
    kRoot + "/data/models/stories260K.bin --tokenizer " + kRoot + "/data/models/tok512.bin";

using test::CmdResult;
CmdResult rme(const std::string& args) { return test::run_rme(args); }

TEST(CliTest, GenerateMatchesLlama2cGoldenExactly) {
  std::string g = read_file(kRoot + "/tests/golden/stories260K_golden.md").value();
  size_t a = g.find("<<<\n") + 4, b = g.find(">>>", a);
  const std::string golden64 = g.substr(a, b - a);
  CmdResult r = rme("generate " + kModel + " --prompt \"Once upon a time\" --temp 0 --tokens 64");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, golden64);
  EXPECT_NE(r.err.find("tok/s"), std::string::npos);
}

TEST(CliTest, SeededSamplingIsDeterministic) {
  CmdResult a = rme("generate " + kModel + " --prompt Lily --temp 1 --seed 5 --tokens 40");
  CmdResult b = rme("generate " + kModel + " --prompt Lily --temp 1 --seed 5 --tokens 40");
  CmdResult c = rme("generate " + kModel + " --prompt Lily --temp 1 --seed 6 --tokens 40");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

TEST(CliTest, EveryCommandHasHelp) {
  for (const char* c : {"info", "generate", "perplexity", "logits", "convert", "tokenizer-train",
                        "corpus", "train"}) {
#ifndef RME_HAVE_TRAIN
    if (std::string(c) == "train") continue;  // below
#endif
    CmdResult r = rme(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0) << c;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << c;
  }
}

#ifndef RME_HAVE_TRAIN
// Built without libtorch: the training commands fail in one line saying what to install.
TEST(CliTest, TrainingWithoutLibtorchSaysWhatToInstall) {
  for (const char* c : {"train", "train-router", "finetune"}) {
    CmdResult r = rme(std::string(c) + " --help");
    EXPECT_EQ(r.code, 1) << c;
    EXPECT_NE(r.err.find("libtorch-dev"), std::string::npos) << c << ": " << r.err;
  }
}
#endif

TEST(CliTest, BadInputExitsOneWithAMessage) {
  const std::string dir = test::temp_dir("cli_bad");
  std::FILE* f = std::fopen((dir + "/bad.gguf").c_str(), "wb");
  std::fputs("GGUF\x03\x00\x00\x00garbage", f);
  std::fclose(f);
  for (const std::string& args :
       std::vector<std::string>{"info " + dir + "/bad.gguf", "info /nonexistent/model.gguf",
                                "logits " + kModel + " --ids \"1 2 x\" --out " + dir + "/o.npy",
                                "logits " + kModel + " --ids \"1 99999\" --out " + dir + "/o.npy",
                                "convert " + kModel + " " + dir + "/o --type q4_0"}) {
    CmdResult r = rme(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("rme: error: "), std::string::npos) << args;
  }
}

// Wrong-typed or impossible values in a Hugging Face directory's JSON files: exit 1 with the
// file and field named (they used to end in `terminate called ... type_error`, exit 134).
TEST(CliTest, WrongTypedConfigValuesAreErrorsNotAborts) {
  const std::string mini = std::string(RME_SOURCE_DIR) + "/data/models/rme-mini";
  const std::string cfg = read_file(mini + "/config.json").value();
  struct Case {
    std::string file, content, needle;
  };
  auto with = [&](const std::string& key, const std::string& value) {
    nlohmann::json c = nlohmann::json::parse(cfg);
    c[key] = nlohmann::json::parse(value);
    return c.dump();
  };
  const std::vector<Case> cases = {
      {"config.json", with("tie_word_embeddings", "\"yes\""), "'tie_word_embeddings'"},
      {"config.json", with("rope_scaling", "\"linear\""), "'rope_scaling'"},
      {"config.json", with("rope_theta", "\"1e4\""), "'rope_theta'"},
      {"config.json", with("rme_rope_freq_factors", "[0, 0, 0, 0]"), "rope_freq_factors"},
      {"config.json", with("rme_moe", "{\"n_expert\": \"2\"}"), "'n_expert'"},
      {"generation_config.json", "{\"eos_token_id\": 99999999}", "'eos_token_id'"},
      {"generation_config.json", "{\"bos_token_id\": \"1\"}", "'bos_token_id'"},
      {"tokenizer_config.json", "{\"add_bos_token\": 1}", "'add_bos_token'"},
      {"tokenizer_config.json", "{\"bos_token\": 5}", "'bos_token'"},
  };
  for (const Case& c : cases) {
    const std::string dir = test::temp_dir("cli_cfg");
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"})
      std::filesystem::copy_file(mini + "/" + f, dir + "/" + f);
    std::ofstream(dir + "/" + c.file, std::ios::trunc) << c.content;
    for (const std::string cmd : {"info ", "generate --new-tokens 2 --prompt Hi "}) {
      CmdResult r = rme(cmd + dir);
      EXPECT_EQ(r.code, 1) << c.file << " " << c.content.substr(0, 60) << "\n" << r.err;
      EXPECT_NE(r.err.find("rme: error: "), std::string::npos) << r.err;
      EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
    }
  }
}

TEST(CliTest, LogitsWritesNpyOfEveryPosition) {
  const std::string out = test::temp_dir("cli_logits") + "/l.npy";
  CmdResult r = rme("logits " + kModel + " --ids \"1 403 407 261\" --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<int64_t> shape;
  auto v = read_npy_f32(out, &shape);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(shape, (std::vector<int64_t>{4, 512}));
}

TEST(CliTest, ConvertRoundTripKeepsLogits) {
  const std::string dir = test::temp_dir("cli_convert");
  ASSERT_EQ(rme("convert " + kModel + " " + dir + "/hf").code, 0);
  ASSERT_EQ(rme("convert " + dir + "/hf " + dir + "/m.gguf").code, 0);
  ASSERT_EQ(rme("convert " + dir + "/m.gguf " + dir + "/hf2").code, 0);
  const std::string ids = " --ids \"1 403 407 261 2 9 100\" --out ";
  ASSERT_EQ(rme("logits " + kModel + ids + dir + "/a.npy").code, 0);
  ASSERT_EQ(rme("logits " + dir + "/hf" + ids + dir + "/b.npy").code, 0);
  ASSERT_EQ(rme("logits " + dir + "/hf2" + ids + dir + "/c.npy").code, 0);
  // safetensors -> GGUF -> safetensors: bit-identical.
  EXPECT_EQ(read_npy_f32(dir + "/b.npy", nullptr).value(),
            read_npy_f32(dir + "/c.npy", nullptr).value());
  // llama2.c (interleaved RoPE) vs HF (rotate_half, permuted rows): same math, other sum order
  // (float rounding relative to the logits' size, which reaches ~10).
  auto a = read_npy_f32(dir + "/a.npy", nullptr).value(),
       b = read_npy_f32(dir + "/b.npy", nullptr).value();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5 * (1 + std::fabs(a[i])));
  // The tokenizer survives too: the converted model tells the same story.
  CmdResult g1 = rme("generate " + kModel + " --prompt \"Once upon a time\" --temp 0 --tokens 40");
  CmdResult g2 =
      rme("generate " + dir + "/m.gguf --prompt \"Once upon a time\" --temp 0 --tokens 40");
  CmdResult g3 = rme("generate " + dir + "/hf2 --prompt \"Once upon a time\" --temp 0 --tokens 40");
  EXPECT_EQ(g1.out, g2.out);
  EXPECT_EQ(g1.out, g3.out);
}

TEST(CliTest, PerplexityJson) {
  const std::string dir = test::temp_dir("cli_ppl");
  std::FILE* f = std::fopen((dir + "/t.txt").c_str(), "wb");
  std::fputs("Once upon a time, there was a little girl named Lily. She loved to play outside.", f);
  std::fclose(f);
  CmdResult r = rme("perplexity " + kModel + " -f " + dir + "/t.txt --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"perplexity\""), std::string::npos);
  EXPECT_NE(r.out.find("\"bits_per_byte\""), std::string::npos);
}

// --tokenizer gives a vocabulary-less GGUF (a random benchmark model) a tokenizer directory; a
// file, or a tokenizer larger than the model's vocabulary, is an error with a message.
TEST(CliTest, TokenizerOverrideForAGgufWithoutOne) {
  const std::string dir = test::temp_dir("cli_tok_override");
  const std::string mini = kRoot + "/data/models/rme-mini";
  ASSERT_EQ(rme("init-random --config " + mini + " --type f32 -o " + dir + "/x.gguf").code, 0);
  const std::string gen = "generate " + dir + "/x.gguf --prompt Once --tokens 3 --temp 0";
  CmdResult none = rme(gen);
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("no tokenizer"), std::string::npos) << none.err;
  CmdResult ok = rme(gen + " --tokenizer " + mini);
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(ok.out.rfind("Once", 0), 0u) << ok.out;
  CmdResult file = rme(gen + " --tokenizer " + mini + "/tokenizer.json");
  EXPECT_EQ(file.code, 1);
  EXPECT_NE(file.err.find("is a directory"), std::string::npos) << file.err;
  const std::string llama2 = kRoot + "/../shared/data/tokenizers/llama2_tokenizer.model";
  if (std::filesystem::exists(llama2)) {  // 32000 tokens for a model of 4096
    std::filesystem::create_directories(dir + "/l2");
    std::filesystem::create_symlink(llama2, dir + "/l2/tokenizer.model");
    CmdResult big = rme(gen + " --tokenizer " + dir + "/l2");
    EXPECT_EQ(big.code, 1);
    EXPECT_NE(big.err.find("tokenizer of 32000 tokens for a model of 4096"), std::string::npos)
        << big.err;
  }
}

// `--trace-out` naming a device or FIFO fails at start (exit 1), leaving the node as it was;
// renaming the trace over it at exit once replaced /dev/full.
TEST(CliTest, ServeRefusesATraceOutputThatIsNotAFile) {
  const std::string fifo = test::temp_dir("cli_trace_fifo") + "/trace.csv";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  CmdResult r = rme("serve " + kRoot + "/data/models/rme-mini --port 0 --trace-out " + fifo);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is a FIFO, not a regular file"), std::string::npos) << r.err;
  struct stat s {};
  ASSERT_EQ(::lstat(fifo.c_str(), &s), 0);
  EXPECT_TRUE(S_ISFIFO(s.st_mode));
}

// A closed loop of 3 clients against a real `rme serve` (rme-mini): every request completes and
// the report counts them.
TEST(CliTest, BenchServeClosedLoopAgainstServe) {
  const std::string dir = test::temp_dir("cli_bench_serve");
  const int port = 20000 + static_cast<int>(getpid() % 20000);
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  const std::string mini = kRoot + "/data/models/rme-mini";
  const std::string serve = std::string(RME_BIN) + " serve " + mini + " -t 1 --port " +
                            std::to_string(port) + " >" + dir + "/serve.log 2>&1 & echo $! >" +
                            dir + "/pid";
  ASSERT_EQ(std::system(serve.c_str()), 0);
  std::string pid = read_file(dir + "/pid").value();
  pid.erase(pid.find_last_not_of(" \n") + 1);
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    up = std::system(("curl -sf " + url + "/health >/dev/null 2>&1").c_str()) == 0;
    if (!up) usleep(100000);
  }
  CmdResult r{-1, "", ""};
  if (up)
    r = rme("bench-serve --url " + url + " --model " + mini +
            " --clients 3 --requests 6 --prompt-tokens 8 --max-tokens 5 --seed 7");
  EXPECT_EQ(std::system(("kill -INT " + pid + " >/dev/null 2>&1").c_str()), 0);
  ASSERT_TRUE(up) << read_file(dir + "/serve.log").value();
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["n_requests"], 6);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_GT(j["throughput_tok_s"].get<double>(), 0);
  EXPECT_GT(j["tpot_s"]["p50"].get<double>(), 0);
  // Neither a trace nor clients: an error with a message, not a crash.
  CmdResult bad = rme("bench-serve --url " + url + " --model " + mini);
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("--clients"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace rme
