// tests/formats: GGUF metadata and tensors survive a write/read cycle; alignment is honoured.
#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "util/tiny_model.h"

namespace rme {
namespace {

// Arrays of arrays (llama.cpp's reader and writers allow them), written byte by byte.
TEST(GgufTest, ReadsNestedArrays) {
  std::string b;
  auto u32 = [&](uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [&](uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); };
  auto str = [&](const std::string& s) {
    u64(s.size());
    b += s;
  };
  u32(0x46554747);  // "GGUF"
  u32(3);
  u64(0);  // tensors
  u64(1);  // metadata
  str("nested");
  u32(9);  // array
  u32(9);  // of arrays
  u64(2);
  u32(4);  // [u32 x 2]
  u64(2);
  u32(1);
  u32(2);
  u32(8);  // [string x 1]
  u64(1);
  str("x");
  const std::string path = test::temp_dir("gguf_nested") + "/n.gguf";
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(b.data(), 1, b.size(), f);
  std::fclose(f);
  auto g = GgufFile::open(path);
  ASSERT_TRUE(g.ok()) << g.status().message();
  const GgufValue* v = (*g)->find("nested");
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(v->arrays.size(), 2u);
  EXPECT_EQ(v->arrays[0].ints, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(v->arrays[1].strings, std::vector<std::string>{"x"});
}

TEST(GgufTest, MetadataAndTensorsRoundTrip) {
  const std::string path = test::temp_dir("gguf_rt") + "/x.gguf";
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("a.u32", 7);
  w.set_f32("a.f32", 0.5f);
  w.set_bool("a.bool", true);
  w.set_strings("a.strs", {"x", "ÿ", ""});
  w.set_i32s("a.ints", {-1, 2, 3});
  std::vector<float> t1 = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> t2(64, 0x3c00);
  w.add_tensor("t1", DType::kF32, {2, 3}, t1.data());
  w.add_tensor("t2", DType::kF16, {64}, t2.data());
  ASSERT_TRUE(w.write(path, 64).ok());
  auto g = GgufFile::open(path);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ((*g)->version(), 3u);
  EXPECT_EQ((*g)->find("a.u32")->as_int(), 7);
  EXPECT_EQ((*g)->find("a.f32")->as_double(), 0.5);
  EXPECT_EQ((*g)->find("a.bool")->as_int(), 1);
  EXPECT_EQ((*g)->find("a.strs")->strings, (std::vector<std::string>{"x", "ÿ", ""}));
  EXPECT_EQ((*g)->find("a.ints")->ints, (std::vector<int64_t>{-1, 2, 3}));
  const GgufTensorInfo* a = (*g)->find_tensor("t1");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->view.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->ne, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(static_cast<const float*>(a->view.data)[5], 6.0f);
  const GgufTensorInfo* b = (*g)->find_tensor("t2");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b->view.data) % 64, 0u);
}

}  // namespace
}  // namespace rme
