// Tests: routing statistics on hand-counted choices (load shares, locality, transitions, MI).
#include "moefy/routing_stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace rme {
namespace {

TEST(RoutingStatsTest, HandCountedTwoLayerChoices) {
  RoutingStats s(2, 2);
  // Layer 0 then layer 1 of one 4-token sequence per domain.
  s.add("a", {{0, 0, 1, 1}, {0, 0, 1, 1}});  // layer 1 copies layer 0: 1 bit of MI
  s.add("b", {{1, 1, 1, 1}, {0, 1, 0, 1}});
  ASSERT_EQ(s.domains(), (std::vector<std::string>{"a", "b"}));
  const auto shares = s.load_shares();  // over both rows
  EXPECT_DOUBLE_EQ(shares[0][0], 0.5);
  EXPECT_DOUBLE_EQ(shares[0][1], 0.5);
  EXPECT_DOUBLE_EQ(shares[1][0], 2.0 / 8);
  EXPECT_DOUBLE_EQ(shares[1][1], 6.0 / 8);
  // a: row 0 pairs (0,0)(0,1)(1,1) -> 2 same of 3; row 1 the same: 4/6.
  EXPECT_DOUBLE_EQ(s.locality(0), 4.0 / 6);
  // b: row 0 all same (3/3), row 1 alternates (0/3): 3/6.
  EXPECT_DOUBLE_EQ(s.locality(1), 0.5);
  EXPECT_DOUBLE_EQ(s.locality_all(), 7.0 / 12);
  // Transitions layer 0 -> 1: a gives 0->0 x2, 1->1 x2; b gives 1->0 x2, 1->1 x2.
  const auto p = s.transition_probabilities();
  EXPECT_DOUBLE_EQ(p[0][0], 1.0);
  EXPECT_DOUBLE_EQ(p[0][1], 0.0);
  EXPECT_DOUBLE_EQ(p[1][0], 2.0 / 6);
  EXPECT_DOUBLE_EQ(p[1][1], 4.0 / 6);
  // MI from the joint counts [[2, 0], [2, 4]] / 8.
  const double j[2][2] = {{2 / 8.0, 0}, {2 / 8.0, 4 / 8.0}};
  const double r[2] = {2 / 8.0, 6 / 8.0}, c[2] = {4 / 8.0, 4 / 8.0};
  double mi = 0;
  for (int x = 0; x < 2; ++x)
    for (int y = 0; y < 2; ++y)
      if (j[x][y] > 0) mi += j[x][y] * std::log2(j[x][y] / (r[x] * c[y]));
  EXPECT_NEAR(s.mutual_information(0), mi, 1e-12);
}

TEST(RoutingStatsTest, OneRowHasNoTransitions) {
  RoutingStats s(3, 1);
  s.add("x", {{2, 2, 0}});
  EXPECT_TRUE(s.transition_probabilities().empty());
  EXPECT_DOUBLE_EQ(s.load_shares()[0][2], 2.0 / 3);
  EXPECT_DOUBLE_EQ(s.locality(0), 0.5);
}

}  // namespace
}  // namespace rme
