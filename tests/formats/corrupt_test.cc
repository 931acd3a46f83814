// tests/formats: malformed and truncated files give clear errors (file, field or tensor, expected
// vs found), never a crash, hang or huge allocation.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "core/file.h"
#include "formats/model_io.h"
#include "tokenizer/llama2c_vocab.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

std::string slurp(const std::string& p) { return read_file(p).value(); }
void dump(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// Loads `bytes` saved as `name` and expects an error whose message contains every `needle`.
void expect_error(const std::string& dir, const std::string& name, const std::string& bytes,
                  std::vector<std::string> needles) {
  const std::string path = dir + "/" + name;
  dump(path, bytes);
  auto r = load_model(path);
  ASSERT_FALSE(r.ok()) << name << " loaded although corrupt";
  needles.push_back(path);
  for (const auto& n : needles)
    EXPECT_NE(r.status().message().find(n), std::string::npos)
        << name << ": message '" << r.status().message() << "' lacks '" << n << "'";
}

template <typename T>
void poke(std::string& s, size_t off, T v) {
  std::memcpy(&s[off], &v, sizeof(T));
}

class CorruptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir("corrupt");
    w_ = test::random_weights(test::tiny_config(40, 32, 1, 4, 2, 64, false), 3);
    test::write_gguf(w_, dir_ + "/good.gguf", DType::kQ8_0);
    test::write_hf_dir(w_, dir_ + "/good_hf", DType::kF32);
    test::write_llama2c(w_, dir_ + "/good.bin", 0);
    gguf_ = slurp(dir_ + "/good.gguf");
    st_ = slurp(dir_ + "/good_hf/model.safetensors");
    l2c_ = slurp(dir_ + "/good.bin");
    ASSERT_TRUE(load_model(dir_ + "/good.gguf").ok());
    ASSERT_TRUE(load_model(dir_ + "/good_hf").ok());
    ASSERT_TRUE(load_model(dir_ + "/good.bin").ok());
  }
  std::string dir_, gguf_, st_, l2c_;
  test::HfWeights w_;
};

TEST_F(CorruptTest, GgufTruncations) {
  for (size_t n :
       {size_t{3}, size_t{6}, size_t{20}, size_t{100}, gguf_.size() / 2, gguf_.size() - 64})
    expect_error(dir_, "trunc" + std::to_string(n) + ".gguf", gguf_.substr(0, n), {});
  expect_error(dir_, "trunc_data.gguf", gguf_.substr(0, gguf_.size() - 100),
               {"past the end of the file"});
  expect_error(dir_, "trunc_header.gguf", gguf_.substr(0, 40),
               {"metadata count 10 is larger than the file"});
  expect_error(dir_, "trunc_kv.gguf", gguf_.substr(0, 600), {"truncated reading"});
}

TEST_F(CorruptTest, GgufBadFields) {
  std::string s = gguf_;
  poke<uint32_t>(s, 4, 7);
  expect_error(dir_, "version.gguf", s, {"version 7"});
  s = gguf_;
  poke<uint64_t>(s, 8, uint64_t{1} << 60);  // tensor count
  expect_error(dir_, "tensor_count.gguf", s, {"tensor count"});
  s = gguf_;
  poke<uint64_t>(s, 16, uint64_t{1} << 62);  // metadata count
  expect_error(dir_, "kv_count.gguf", s, {"metadata count"});
  s = gguf_;
  poke<uint64_t>(s, 24, uint64_t{1} << 50);  // first key's length
  expect_error(dir_, "key_len.gguf", s, {"truncated", "metadata key #0"});
}

TEST_F(CorruptTest, GgufBadUtf8InMetadata) {
  std::string s = gguf_;
  const size_t at = s.find("llama.block_count");
  ASSERT_NE(at, std::string::npos);
  s[at + 2] = static_cast<char>(0xff);
  expect_error(dir_, "utf8.gguf", s, {"not valid UTF-8"});
}

TEST_F(CorruptTest, GgufAbsurdShapeAndWrongOffset) {
  std::string s = gguf_;
  // The first tensor info follows its name "token_embd.weight": n_dims, ne0, ne1, type, offset.
  const size_t at = s.find("token_embd.weight") + std::strlen("token_embd.weight");
  std::string a = s;
  poke<uint64_t>(a, at + 4, uint64_t{1} << 45);
  expect_error(dir_, "absurd_shape.gguf", a, {"token_embd.weight", "absurd"});
  std::string b = s;
  poke<uint64_t>(b, at + 4 + 16 + 4, uint64_t{1} << 40);
  expect_error(dir_, "offset.gguf", b, {"token_embd.weight", "past the end"});
  std::string c = s;
  poke<uint64_t>(c, at + 4 + 16 + 4, 3);
  expect_error(dir_, "misaligned.gguf", c, {"token_embd.weight", "alignment"});
  std::string d = s;
  poke<uint32_t>(d, at, 9);
  expect_error(dir_, "ndims.gguf", d, {"token_embd.weight", "n_dims 9"});
  std::string e = s;
  poke<uint32_t>(e, at + 4 + 16, 10);  // Q2_K: not read
  expect_error(dir_, "type.gguf", e, {"token_embd.weight", "tensor type Q2_K (10)"});
  std::string f = s;
  poke<uint32_t>(f, at + 4 + 16, 14);  // Q6_K needs rows of 256
  expect_error(dir_, "k_row.gguf", f, {"token_embd.weight", "not a multiple of the q6_k block"});
}

TEST_F(CorruptTest, GgufShapeDisagreesWithConfig) {
  std::string s = gguf_;
  const size_t at = s.find("blk.0.attn_q.weight") + std::strlen("blk.0.attn_q.weight");
  poke<uint64_t>(s, at + 4 + 8, 16);  // ne1 32 -> 16 (rows)
  expect_error(dir_, "shape.gguf", s, {"blk.0.attn_q.weight", "[16, 32] != [32, 32]"});
}

TEST_F(CorruptTest, SafetensorsDamage) {
  const std::string hf = dir_ + "/good_hf";
  auto write_dir = [&](const std::string& name, const std::string& bytes) {
    const std::string d = test::temp_dir("corrupt_" + name);
    dump(d + "/config.json", slurp(hf + "/config.json"));
    dump(d + "/model.safetensors", bytes);
    auto r = load_model(d);
    EXPECT_FALSE(r.ok()) << name;
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(write_dir("tiny", st_.substr(0, 5)).find("truncated"), std::string::npos);
  std::string s = st_;
  poke<uint64_t>(s, 0, uint64_t{1} << 40);
  EXPECT_NE(write_dir("hdrlen", s).find("header length"), std::string::npos);
  s = st_;
  s[9] = '!';
  EXPECT_NE(write_dir("json", s).find("not valid JSON"), std::string::npos);
  EXPECT_NE(write_dir("truncdata", st_.substr(0, st_.size() - 8)).find("outside the data section"),
            std::string::npos);
  s = st_;
  const size_t sh = s.find("[40,32]");
  ASSERT_NE(sh, std::string::npos);
  s.replace(sh, 7, "[40,31]");
  EXPECT_NE(write_dir("shape", s).find("needs"), std::string::npos);
  s = st_;
  const size_t dt = s.find("\"F32\"");
  s.replace(dt, 5, "\"I64\"");
  EXPECT_NE(write_dir("dtype", s).find("dtype I64"), std::string::npos);
}

TEST_F(CorruptTest, HfConfigDamage) {
  const std::string d = test::temp_dir("corrupt_cfg");
  dump(d + "/model.safetensors", st_);
  dump(d + "/config.json", "{\"hidden_size\": 32");
  auto r = load_model(d);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("config.json"), std::string::npos);
  dump(d + "/config.json",
       "{\"vocab_size\": 40, \"hidden_size\": 32, \"num_hidden_layers\": 1, "
       "\"num_attention_heads\": 4, \"intermediate_size\": -5}");
  r = load_model(d);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("intermediate_size"), std::string::npos)
      << r.status().message();
  dump(d + "/config.json",
       "{\"vocab_size\": 40, \"hidden_size\": 32, \"num_hidden_layers\": 1, "
       "\"num_attention_heads\": 4, \"intermediate_size\": 64, \"num_key_value_heads\": 3}");
  r = load_model(d);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("n_head_kv 3"), std::string::npos) << r.status().message();
}

TEST_F(CorruptTest, Llama2cDamage) {
  expect_error(dir_, "short.bin", l2c_.substr(0, 10), {"truncated"});
  expect_error(dir_, "trunc.bin", l2c_.substr(0, l2c_.size() - 4), {"needs"});
  std::string s = l2c_;
  poke<int32_t>(s, 0, 1 << 30);  // dim
  expect_error(dir_, "dim.bin", s, {"n_embd"});
  s = l2c_;
  poke<int32_t>(s, 16, 3);  // n_kv_heads does not divide n_heads
  expect_error(dir_, "kv.bin", s, {"n_head_kv 3"});
}

TEST_F(CorruptTest, Llama2cTokenizerDamage) {
  const std::string tok = std::string(RME_SOURCE_DIR) + "/data/models/tok512.bin";
  std::string t = slurp(tok);
  dump(dir_ + "/tok_trunc.bin", t.substr(0, t.size() / 2));
  auto r = read_llama2c_vocab(dir_ + "/tok_trunc.bin", 512);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos);
  std::string bad = t;
  poke<int32_t>(bad, 8, 1 << 30);  // first token's length
  dump(dir_ + "/tok_len.bin", bad);
  r = read_llama2c_vocab(dir_ + "/tok_len.bin", 512);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("token 0 length"), std::string::npos);
}

}  // namespace
}  // namespace rme
