// tests/model: steady-state decoding allocates nothing on the heap — for every weight type, the
// integer and f32 activation paths, and a Read-ME MoE — counted by replacing operator new.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "kernels/dot_q8.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/random_model.h"
#include "moefy/router_init.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

// GCC pairs the inlined replacement delete's free() with the library's new and warns; both are
// replaced here, so the pairing is malloc/free.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Replaced for this test binary; counts only while a test asks (all threads: the pool's workers
// allocating would count too).
void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace rme {
namespace {

long decode_allocations(const Model& m, ThreadPool& pool, const KernelConfig& kernels) {
  Forward fwd(m, 16, pool, kernels);
  KvCache kv(m, 64);
  std::vector<float> logits(m.config.n_output());
  const std::vector<int> prompt = {1, 5, 9, 13, 17, 21, 25, 29};
  const Status st = fwd.run(prompt, 0, kv, logits.data(), false);
  EXPECT_TRUE(st.ok()) << st.to_string();
  int pos = static_cast<int>(prompt.size());
  for (int i = 0; i < 2; ++i, ++pos) {  // warm-up: per-thread scratch reaches its size
    const int tok[1] = {pos % 31};
    EXPECT_TRUE(fwd.run(tok, pos, kv, logits.data(), false).ok());
  }
  g_allocations = 0;
  g_counting = true;
  for (int i = 0; i < 8; ++i, ++pos) {
    const int tok[1] = {(pos * 7) % 31};
    EXPECT_TRUE(fwd.run(tok, pos, kv, logits.data(), false).ok());
  }
  g_counting = false;
  return g_allocations.load();
}

TEST(DecodeAllocTest, SteadyStateDecodeDoesNotAllocate) {
  ThreadPool pool(2);
  Result<LlamaConfig> c = named_shape("rme-mini");
  ASSERT_TRUE(c.ok());
  for (bool int8 : {false, true}) {
    KernelConfig kernels = KernelConfig::best();
    kernels.int8 = int8;
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
      Model m = random_model(*c, t, 3, pool);
      EXPECT_EQ(decode_allocations(m, pool, kernels), 0) << dtype_name(t);
    }
    Model moe = random_moe(*c, 4, 0.5, 0.25, DType::kQ8_0, 4, pool);
    moe.router = random_router(*c, 4, default_router_shape(*c), 5);  // routes every token
    EXPECT_EQ(decode_allocations(moe, pool, kernels), 0) << "MoE";
  }
}

}  // namespace
}  // namespace rme
