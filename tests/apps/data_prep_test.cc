// tests/apps: `rme tokenizer-train` and `rme corpus` end to end on real text.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>

#include "core/file.h"
#include "formats/text_corpus.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

int rme(const std::string& args) {
  int st = std::system((std::string(RME_BIN) + " " + args + " 2>/dev/null").c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(DataPrepTest, TokenizerTrainThenCorpus) {
  const std::string dir = test::temp_dir("dataprep");
  const std::string readme = std::string(RME_SOURCE_DIR) + "/README.md";
  const std::string docs = std::string(RME_SOURCE_DIR) + "/docs/architecture.md";
  std::ofstream(dir + "/qa.jsonl")
      << "{\"question\": \"What is 2+3?\", \"answer\": \"2+3 = 5\\n#### 5\"}\n"
      << "{\"question\": \"Name a colour.\", \"answer\": \"Blue.\"}\n";
  ASSERT_EQ(rme("tokenizer-train --vocab 400 --out " + dir + "/tok --input " + readme + " " + docs +
                " " + dir + "/qa.jsonl"),
            0);
  register_sentencepiece_loader();
  auto sp = SentencePieceTokenizer::load(dir + "/tok/tokenizer.model");
  ASSERT_TRUE(sp.ok()) << sp.status().message();
  EXPECT_EQ((*sp)->n_vocab(), 400);
  // The tokenizer.json written beside it (for libsentencepiece-free binaries) agrees exactly.
  auto bpe = load_hf_tokenizer(dir + "/tok");  // prefers tokenizer.json
  ASSERT_TRUE(bpe.ok()) << bpe.status().message();
  EXPECT_NE((*bpe)->kind().find("merges"), std::string::npos);
  const std::string text = read_file(readme).value();
  EXPECT_EQ((*bpe)->encode(text, true), (*sp)->encode(text, true));
  EXPECT_EQ((*sp)->decode((*sp)->encode(text, false)), text);  // identity normalization

  ASSERT_EQ(rme("corpus --tokenizer " + dir + "/tok --out " + dir +
                "/corpus --domain readme=" + readme + " --domain math=" + dir +
                "/qa.jsonl --valid math=" + dir + "/qa.jsonl --valid-fraction 0.1"),
            0);
  auto m = read_manifest(dir + "/corpus");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->n_vocab, 400);
  EXPECT_EQ(m->train.at("math").documents, 2);
  const ShardInfo& rt = m->train.at("readme");
  const ShardInfo& rv = m->valid.at("readme");
  EXPECT_EQ(rt.bytes + rv.bytes, static_cast<int64_t>(text.size()));
  EXPECT_NEAR(static_cast<double>(rv.bytes) / text.size(), 0.1, 0.02);
  auto shard = TokenShard::open(dir + "/corpus/" + rt.file, 400);
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ(shard->size(), rt.tokens);
  EXPECT_EQ((*shard)[0], 1);  // documents start with BOS
  EXPECT_TRUE(file_exists(dir + "/corpus/tokenizer.model"));
  // Bad input: a domain without files, a --valid for an unknown domain.
  EXPECT_EQ(rme("corpus --tokenizer " + dir + "/tok --out " + dir + "/c2 --domain x="), 1);
  EXPECT_EQ(rme("corpus --tokenizer " + dir + "/tok --out " + dir + "/c2 --domain a=" + readme +
                " --valid b=" + readme),
            1);
}

}  // namespace
}  // namespace rme
