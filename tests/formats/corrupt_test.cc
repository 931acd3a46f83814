// tests/formats: malformed and truncated files give clear errors (file, field or tensor, expected
// vs found), never a crash, hang or huge allocation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "formats/model_io.h"
#include "tensor/finite.h"
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
  poke<uint64_t>(s, at + 4 + 8, 16);  // ne1 32 -> 16 (rows): half its bytes left unexplained
  expect_error(dir_, "shape.gguf", s, {"blk.0.attn_q.weight", "unused bytes"});
}

// Files that parse but do not hold together: a matrix's type code changed (F16 reads past its
// bytes into the next tensor's, Q4_0 leaves half of them unexplained, Q6_K cannot split its
// rows), a norm's type changed, every offset zeroed (all tensors alias one another).
TEST_F(CorruptTest, GgufInconsistentTypesAndOffsets) {
  const std::string q = "blk.0.attn_q.weight";
  const size_t at = gguf_.find(q) + q.size();  // n_dims, ne0, ne1, type, offset
  std::string s = gguf_;
  poke<uint32_t>(s, at + 4 + 16, 1);
  expect_error(dir_, "type_f16.gguf", s, {q, "overlap"});
  s = gguf_;
  poke<uint32_t>(s, at + 4 + 16, 2);
  expect_error(dir_, "type_q4_0.gguf", s, {q, "unused bytes", "q4_0"});
  s = gguf_;
  poke<uint32_t>(s, at + 4 + 16, 14);
  expect_error(dir_, "type_q6_k.gguf", s, {q, "q6_k"});
  const std::string norm = "blk.0.attn_norm.weight";
  const size_t nat = gguf_.find(norm) + norm.size();  // n_dims (1), ne0, type, offset
  s = gguf_;
  poke<uint32_t>(s, nat + 4 + 8, 1);
  expect_error(dir_, "norm_f16.gguf", s, {norm, "f16"});
  s = gguf_;
  int zeroed = 0;
  for (const std::string& name : std::vector<std::string>{
           "token_embd.weight", "output_norm.weight", "output.weight", norm, q,
           "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight",
           "blk.0.ffn_norm.weight", "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight",
           "blk.0.ffn_down.weight"}) {
    const size_t p = s.find(name);
    if (p == std::string::npos) continue;
    uint32_t n_dims;
    std::memcpy(&n_dims, &s[p + name.size()], 4);
    poke<uint64_t>(s, p + name.size() + 4 + 8 * n_dims + 4, 0);
    ++zeroed;
  }
  ASSERT_GE(zeroed, 10);
  expect_error(dir_, "offsets0.gguf", s, {"overlap"});
}

// NaN or Inf in weights: a warning by default (norms and each matrix's first and last row are
// scanned), an error naming tensor, row and column with the full scan (--check-weights,
// rme info --check).
TEST_F(CorruptTest, NonFiniteWeightsWarnOrFail) {
  test::HfWeights w = w_;
  w.layers[0].down[5 * 64 + 7] = std::nanf("");  // row 5 of ffn_down [32, 64]: quick scan misses
  w.layers[0].attn_norm[3] = INFINITY;
  const std::string d = test::temp_dir("corrupt_nan");
  test::write_hf_dir(w, d, DType::kF32);
  ASSERT_TRUE(load_model(d).ok());
  LoadOptions full;
  full.check_weights = WeightCheck::kFull;
  auto r = load_model(d, full);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("input_layernorm"), std::string::npos)
      << r.status().message();
  w.layers[0].attn_norm[3] = 1;
  test::write_hf_dir(w, d, DType::kF32);
  r = load_model(d, full);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("down_proj.weight' (f32) row 5 column 7 is NaN"),
            std::string::npos)
      << r.status().message();
}

// Quantized blocks hold NaN/Inf only in their f16 scale (and min): found where each format keeps
// them, reported at the block's first element.
TEST(FiniteTest, QuantizedBlockScalesAndMins) {
  const uint16_t nan = 0x7E00, inf = 0x7C00, one = 0x3C00;
  struct Case {
    DType t;
    size_t at;  // byte of the f16 field in the block
  };
  for (const Case& c : {Case{DType::kQ8_0, 0}, Case{DType::kQ4_0, 0}, Case{DType::kQ4_K, 0},
                        Case{DType::kQ4_K, 2}, Case{DType::kQ5_K, 2}, Case{DType::kQ6_K, 208}}) {
    const size_t bytes = dtype_block_bytes(c.t);
    const int64_t n = 3 * dtype_block_size(c.t);
    std::string blocks(3 * bytes, '\0');
    for (int b = 0; b < 3; ++b) std::memcpy(&blocks[b * bytes + c.at], &one, 2);
    EXPECT_EQ(first_nonfinite(c.t, blocks.data(), n), -1) << dtype_name(c.t);
    std::memcpy(&blocks[2 * bytes + c.at], &inf, 2);
    EXPECT_EQ(first_nonfinite(c.t, blocks.data(), n), 2 * dtype_block_size(c.t));
    std::memcpy(&blocks[1 * bytes + c.at], &nan, 2);
    EXPECT_EQ(first_nonfinite(c.t, blocks.data(), n), dtype_block_size(c.t));
  }
  const uint16_t halves[] = {one, one, 0xFC00};  // f16 -Inf
  EXPECT_EQ(first_nonfinite(DType::kF16, halves, 3), 2);
  const uint16_t bf[] = {0x3F80, 0x7FC0};  // bf16 1.0, NaN
  EXPECT_EQ(first_nonfinite(DType::kBF16, bf, 2), 1);
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
  {  // one norm's range aliased to the other's (same length, so each entry alone is valid)
    uint64_t n;
    std::memcpy(&n, st_.data(), 8);
    nlohmann::json h = nlohmann::json::parse(st_.substr(8, n));
    const std::string a = "model.layers.0.input_layernorm.weight";
    const std::string b = "model.layers.0.post_attention_layernorm.weight";
    ASSERT_TRUE(h.contains(a) && h.contains(b));
    h[b]["data_offsets"] = h[a]["data_offsets"];
    std::string hs = h.dump();
    ASSERT_LE(hs.size(), n);
    hs.resize(n, ' ');
    const std::string msg = write_dir("overlap", st_.substr(0, 8) + hs + st_.substr(8 + n));
    EXPECT_NE(msg.find("overlap"), std::string::npos) << msg;
  }
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
