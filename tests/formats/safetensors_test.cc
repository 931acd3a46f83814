// tests/formats: safetensors write/read and the .npy writer.
#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include "formats/npy.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

TEST(SafetensorsTest, RoundTrip) {
  const std::string path = test::temp_dir("st_rt") + "/m.safetensors";
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b = {0x3f80, 0x4000};
  ASSERT_TRUE(write_safetensors(
                  path, {{"a", DType::kF32, {2, 3}, a.data()}, {"b", DType::kBF16, {2}, b.data()}},
                  {{"format", "pt"}})
                  .ok());
  auto f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  EXPECT_EQ((*f)->find("a")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(static_cast<const float*>((*f)->find("a")->data)[4], 5.0f);
  EXPECT_EQ(static_cast<const uint16_t*>((*f)->find("b")->data)[1], 0x4000);
  EXPECT_EQ((*f)->find("zzz"), nullptr);
}

TEST(SafetensorsTest, QuantizedTypesAreRefused) {
  std::vector<uint8_t> q(34);
  auto st = write_safetensors(test::temp_dir("st_q") + "/q.safetensors",
                              {{"q", DType::kQ8_0, {32}, q.data()}});
  EXPECT_FALSE(st.ok());
}

TEST(NpyTest, RoundTrip) {
  const std::string path = test::temp_dir("npy") + "/x.npy";
  std::vector<float> v = {1.5f, -2, 3, 4, 5, 6};
  ASSERT_TRUE(write_npy_f32(path, v.data(), {2, 3}).ok());
  std::vector<int64_t> shape;
  auto r = read_npy_f32(path, &shape);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, v);
  EXPECT_EQ(shape, (std::vector<int64_t>{2, 3}));
}

}  // namespace
}  // namespace rme
