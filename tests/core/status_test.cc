// tests/core: Status and Result.
#include "core/status.h"

#include <gtest/gtest.h>

namespace rme {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return invalid_argument("value " + std::to_string(v) + " is not positive");
  return v;
}

Result<int> twice(int v) {
  RME_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = corrupt("bad");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_EQ(s.with_context("f.gguf").message(), "f.gguf: bad");
}

TEST(StatusTest, ResultPropagates) {
  EXPECT_EQ(twice(4).value(), 8);
  auto r = twice(-1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "value -1 is not positive");
}

}  // namespace
}  // namespace rme
