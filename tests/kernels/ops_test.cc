// tests/kernels: RMSNorm, softmax, SwiGLU, RoPE and attention against direct formulas.
#include "kernels/ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu.h"

namespace rme {
namespace {

TEST(OpsTest, RmsNorm) {
  std::vector<float> x = {1, -2, 3, 0.5f}, w = {1, 2, 0.5f, -1}, out(4);
  rmsnorm(x.data(), w.data(), 4, 1e-5f, out.data());
  double ms = (1 + 4 + 9 + 0.25) / 4;
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[i], x[i] / std::sqrt(ms + 1e-5) * w[i], 1e-6);
}

TEST(OpsTest, SoftmaxSumsToOneAndIsStable) {
  std::vector<float> x = {1000, 1001, 999};
  softmax(x.data(), 3);
  EXPECT_NEAR(x[0] + x[1] + x[2], 1.0, 1e-6);
  EXPECT_GT(x[1], x[0]);
}

TEST(OpsTest, SiluMul) {
  std::vector<float> g = {0, 1, -2}, u = {3, 2, 1};
  silu_mul(g.data(), u.data(), 3);
  EXPECT_NEAR(g[0], 0, 1e-7);
  EXPECT_NEAR(g[1], 1 / (1 + std::exp(-1.0)) * 2, 1e-6);
  EXPECT_NEAR(g[2], -2 / (1 + std::exp(2.0)), 1e-6);
}

TEST(OpsTest, RopeStylesRotateTheirPairs) {
  const int dh = 4;
  std::vector<float> inv = {1.0f, 0.1f};
  std::vector<float> a = {1, 2, 3, 4}, b = a;
  rope(a.data(), 1, dh, 3, inv.data(), RopeStyle::kInterleaved);
  rope(b.data(), 1, dh, 3, inv.data(), RopeStyle::kHalf);
  auto rot = [](float x, float y, float ang) {
    return std::pair<float, float>{x * std::cos(ang) - y * std::sin(ang),
                                   x * std::sin(ang) + y * std::cos(ang)};
  };
  auto [a0, a1] = rot(1, 2, 3.0f);
  auto [a2, a3] = rot(3, 4, 0.3f);
  EXPECT_NEAR(a[0], a0, 1e-6);
  EXPECT_NEAR(a[1], a1, 1e-6);
  EXPECT_NEAR(a[2], a2, 1e-6);
  EXPECT_NEAR(a[3], a3, 1e-6);
  auto [b0, b2] = rot(1, 3, 3.0f);
  auto [b1, b3] = rot(2, 4, 0.3f);
  EXPECT_NEAR(b[0], b0, 1e-6);
  EXPECT_NEAR(b[2], b2, 1e-6);
  EXPECT_NEAR(b[1], b1, 1e-6);
  EXPECT_NEAR(b[3], b3, 1e-6);
}

TEST(OpsTest, AttentionHeadIsSoftmaxWeightedValues) {
  const int dh = 3, n = 4, stride = 5;
  std::vector<float> q = {0.3f, -0.2f, 0.5f}, k(n * stride), v(n * stride), scratch(n), out(dh);
  for (int i = 0; i < n * stride; ++i) {
    k[i] = std::sin(i * 0.7f);
    v[i] = std::cos(i * 0.3f);
  }
  attention_head(Isa::kScalar, q.data(), k.data(), v.data(), stride, n, dh, scratch.data(),
                 out.data());
  std::vector<double> s(n);
  double mx = -1e9, sum = 0;
  for (int t = 0; t < n; ++t) {
    for (int i = 0; i < dh; ++i) s[t] += q[i] * k[t * stride + i];
    s[t] /= std::sqrt(3.0);
    mx = std::max(mx, s[t]);
  }
  for (auto& x : s) sum += (x = std::exp(x - mx));
  for (int i = 0; i < dh; ++i) {
    double o = 0;
    for (int t = 0; t < n; ++t) o += s[t] / sum * v[t * stride + i];
    EXPECT_NEAR(out[i], o, 1e-6);
  }
}

TEST(OpsTest, PagedAttentionEqualsContiguousBitForBit) {
  // 11 positions in blocks of 4, scattered over a pool of 5 blocks in a shuffled order; head
  // sizes for every ISA's kernel (8 is the scalar one's on AVX-512), on every ISA the CPU has.
  for (Isa isa : supported_isas())
    for (int dh : {8, 64}) {
      const int n = 11, bs = 4, stride = dh;
      const std::vector<int> blocks = {3, 0, 4};
      std::vector<float> q(dh), k(n * stride), v(n * stride), pk(5 * bs * stride), pv(pk.size());
      for (int i = 0; i < dh; ++i) q[i] = std::sin(i * 1.3f);
      for (int t = 0; t < n; ++t)
        for (int i = 0; i < dh; ++i) {
          k[t * stride + i] = std::sin(t * 0.7f + i);
          v[t * stride + i] = std::cos(t * 0.3f - i);
          const int at = (blocks[t / bs] * bs + t % bs) * stride + i;
          pk[at] = k[t * stride + i];
          pv[at] = v[t * stride + i];
        }
      std::vector<float> scratch(n), a(dh), b(dh);
      attention_head(isa, q.data(), k.data(), v.data(), stride, n, dh, scratch.data(), a.data());
      attention_head_paged(isa, q.data(), pk.data(), pv.data(), blocks.data(), bs, bs * stride,
                           stride, n, dh, scratch.data(), b.data());
      for (int i = 0; i < dh; ++i) EXPECT_EQ(a[i], b[i]) << isa_name(isa) << " " << dh << " " << i;
    }
}

using PagedAttentionFn = bool (*)(const float*, const float*, const float*, const int*, int64_t,
                                  int64_t, int64_t, int64_t, int64_t, float*, float*);

// A vector attention kernel against the scalar reference: every head size it takes (multiples of
// `step` up to 128), context lengths around its vector width, paged in blocks of 16 in reversed
// order, with scores from flat to very peaked.
void expect_attention_matches_reference(PagedAttentionFn fn, int step) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 1);
  for (int dh = step; dh <= 128; dh += step)
    for (int n : {1, 7, 8, 9, 15, 16, 17, 100, 300})
      for (float qscale : {0.1f, 1.0f, 8.0f}) {
        const int bs = 16, nb = (n + bs - 1) / bs, stride = dh + 3;
        std::vector<int> blocks(nb);
        for (int b = 0; b < nb; ++b) blocks[b] = nb - 1 - b;
        std::vector<float> q(dh), k(nb * bs * stride), v(k.size()), s1(n), s2(n), a(dh), b(dh);
        for (auto& x : q) x = qscale * nd(rng);
        for (auto& x : k) x = nd(rng);
        for (auto& x : v) x = nd(rng);
        attention_head_paged_ref(q.data(), k.data(), v.data(), blocks.data(), bs, bs * stride,
                                 stride, n, dh, s1.data(), a.data());
        ASSERT_TRUE(fn(q.data(), k.data(), v.data(), blocks.data(), bs, bs * stride, stride, n, dh,
                       s2.data(), b.data()));
        for (int i = 0; i < dh; ++i)
          ASSERT_NEAR(a[i], b[i], 2e-5f * (1 + std::fabs(a[i])))
              << "dh " << dh << " n " << n << " q scale " << qscale << " i " << i;
      }
  float x = 0;
  EXPECT_FALSE(fn(&x, &x, &x, nullptr, 1, 0, 8, 1, step + 1, &x, &x));  // head_dim it lacks
  EXPECT_FALSE(fn(&x, &x, &x, nullptr, 1, 0, 8, 0, step, &x, &x));      // no positions
}

// Each architecture's vector kernels; those of the other architecture are not built (and those
// of an ISA this CPU lacks are reported as skipped).
#if defined(__x86_64__)
TEST(OpsTest, Avx512AttentionMatchesReference) {
  if (!cpu_has(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512";
  expect_attention_matches_reference(attention_head_paged_avx512, 16);
}

// The GQA group kernel against the per-head reference: groups of 4 and 8 heads, head sizes 64 and
// 128, contexts around the vector width, paged in reversed blocks; and attention_group_paged,
// which every ISA runs (per-head calls where the group kernel does not apply), likewise.
TEST(OpsTest, GroupAttentionMatchesPerHeadReference) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 1);
  for (int g : {8, 4, 2})
    for (int dh : {64, 128, 32})
      for (int n : {1, 15, 16, 17, 300}) {
        const int bs = 16, nb = (n + bs - 1) / bs, stride = dh + 3;
        std::vector<int> blocks(nb);
        for (int b = 0; b < nb; ++b) blocks[b] = nb - 1 - b;
        std::vector<float> q(g * dh), k(nb * bs * stride), v(k.size()), s1(n), s2(g * n);
        std::vector<float> want(g * dh), got(g * dh, -1.0f);
        for (auto& x : q) x = 2.0f * nd(rng);
        for (auto& x : k) x = nd(rng);
        for (auto& x : v) x = nd(rng);
        for (int h = 0; h < g; ++h)
          attention_head_paged_ref(q.data() + h * dh, k.data(), v.data(), blocks.data(), bs,
                                   bs * stride, stride, n, dh, s1.data(), want.data() + h * dh);
        const bool fits = (g == 4 || g == 8) && (dh == 64 || dh == 128);
        if (cpu_has(Isa::kAvx512)) {
          EXPECT_EQ(attention_group_paged_avx512(q.data(), g, k.data(), v.data(), blocks.data(), bs,
                                                 bs * stride, stride, n, dh, s2.data(), got.data()),
                    fits);
        }
        for (Isa isa : supported_isas()) {
          std::fill(got.begin(), got.end(), -1.0f);
          attention_group_paged(isa, q.data(), g, k.data(), v.data(), blocks.data(), bs,
                                bs * stride, stride, 0, n, dh, s2.data(), got.data());
          for (int i = 0; i < g * dh; ++i)
            ASSERT_NEAR(got[i], want[i], 2e-5f * (1 + std::fabs(want[i])))
                << isa_name(isa) << " group " << g << " dh " << dh << " n " << n << " i " << i;
        }
      }
}

TEST(OpsTest, Avx2AttentionMatchesReference) {
  if (!cpu_has(Isa::kAvx2)) GTEST_SKIP() << "no AVX2";
  expect_attention_matches_reference(attention_head_paged_avx2, 8);
}
#elif defined(__aarch64__)
TEST(OpsTest, NeonAttentionMatchesReference) {
  if (!cpu_has(Isa::kNeon)) GTEST_SKIP() << "no NEON";
  expect_attention_matches_reference(attention_head_paged_neon, 4);
}
#endif

}  // namespace
}  // namespace rme
