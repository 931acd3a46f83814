// bench: kernel throughput — matmul per ISA and weight dtype (GB/s of weights for one token,
// GFLOP/s for 64 tokens), integer vs f32-activation decode dots, attention, RMSNorm + SwiGLU, and
// the streaming read bandwidth. Run: build/bin/kernels_bench
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/dot_q8.h"
#include "kernels/interleave.h"
#include "kernels/matmul.h"
#include "kernels/membw.h"
#include "kernels/ops.h"
#include "tensor/quant.h"

namespace rme {
namespace {

struct Weights {
  std::vector<uint8_t> data;
  MatView view;
};

Weights make_weights(DType t, int64_t n_out, int64_t n_in) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> row(n_in);
  Weights w;
  const size_t rb = dtype_row_bytes(t, n_in);
  w.data.resize(rb * n_out);
  for (int64_t r = 0; r < n_out; ++r) {
    for (auto& v : row) v = d(rng);
    quantize_row(t, row.data(), w.data.data() + r * rb, n_in);
  }
  w.view = {t, n_out, n_in, w.data.data()};
  return w;
}

void BM_Matmul(benchmark::State& state) {
  const Isa isa = static_cast<Isa>(state.range(0));
  const DType t = static_cast<DType>(state.range(1));
  const int64_t n_tok = state.range(2);
  if (!cpu_has(isa)) {
    state.SkipWithError("ISA not supported");
    return;
  }
  KernelConfig cfg = KernelConfig::best();
  cfg.isa = isa;
  const int64_t n_out = 4096, n_in = 4096;
  Weights w = make_weights(t, n_out, n_in);
  std::vector<float> x(n_tok * n_in, 0.5f), y(n_tok * n_out);
  ThreadPool& pool = ThreadPool::global();
  for (auto _ : state) {
    matmul(cfg, w.view, x.data(), n_in, n_tok, y.data(), n_out, pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GB/s"] = benchmark::Counter(
      static_cast<double>(w.data.size()) * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * n_out * n_in * n_tok * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(isa_name(isa)) + " " + std::string(dtype_name(t)) +
                 " T=" + std::to_string(n_tok));
}

void args(benchmark::internal::Benchmark* b) {
  for (Isa isa : supported_isas())
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                    DType::kQ4_K, DType::kQ6_K})
      for (int64_t n_tok : {1, 2, 3, 4, 8, 64})  // decode, small batches (MoE experts), prefill
        b->Args({static_cast<int64_t>(isa), static_cast<int64_t>(t), n_tok});
}

BENCHMARK(BM_Matmul)->Apply(args)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(0.2);

// Prefill on tinyllama's FFN shape (5632 x 2048, 128 tokens, 2 threads) on the CPU's fastest
// matrix kernels, or (second argument 1) in batch-invariant mode, or (2, BF16 weights) with the
// opt-in bf16 products (gemm_bf16.h); weights interleaved where the loader would (interleave.h):
// GFLOP/s (integer multiply-adds counted as 2 ops for
// Q8_0/Q4_0).
void BM_MatmulPrefill(benchmark::State& state) {
  const DType t = static_cast<DType>(state.range(0));
  KernelConfig cfg = KernelConfig::best();
  cfg.batch_invariant = state.range(1) == 1;
  if (state.range(1) == 2) {
    auto b = cfg.with_bf16();
    if (t != DType::kBF16 || !b.ok()) {
      state.SkipWithError("bf16 products: BF16 weights on an AVX512-BF16 CPU only");
      return;
    }
    cfg = *b;
  }
  const int64_t n_out = 5632, n_in = 2048, n_tok = 128;
  Weights w = make_weights(t, n_out, n_in);
  std::vector<uint8_t> packed;
  if (interleave_helps(cfg, t)) {  // as the loader runs them: interleaved (interleave.h)
    packed.resize(w.data.size());
    interleave_rows16(t, w.data.data(), n_out, n_in, packed.data());
    w.view = {t, n_out, n_in, packed.data(), WeightLayout::kRows16};
  }
  std::vector<float> x(n_tok * n_in), y(n_tok * n_out);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.01f * static_cast<float>(i % 97) - 0.4f;
  ThreadPool& pool = ThreadPool::global();
  for (auto _ : state) {
    matmul(cfg, w.view, x.data(), n_in, n_tok, y.data(), n_out, pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * n_out * n_in * n_tok * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(isa_name(cfg.isa)) + " " + std::string(dtype_name(t)) +
                 (cfg.batch_invariant ? " batch-invariant" : "") + (cfg.bf16 ? " bf16" : ""));
}
BENCHMARK(BM_MatmulPrefill)
    ->ArgsProduct({{static_cast<int64_t>(DType::kF16), static_cast<int64_t>(DType::kQ8_0),
                    static_cast<int64_t>(DType::kQ4_0), static_cast<int64_t>(DType::kQ4_K),
                    static_cast<int64_t>(DType::kQ6_K), static_cast<int64_t>(DType::kBF16)},
                   {0, 1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(0.3);

// Rows against the 16-row interleaved layout (interleave.h) on tinyllama's FFN shapes (gate/up
// 5632 x 2048, or with the fifth argument 1 down's 2048 x 5632), 8 matrices in turn (~50 MB of
// Q4_K, beyond the caches, as in decode): GB/s of weights, decode (1 token) and prefill (64).
// Fourth argument 1: the batch-invariant mode.
void BM_MatmulLayout(benchmark::State& state) {
  const DType t = static_cast<DType>(state.range(0));
  const bool interleaved = state.range(1) != 0;
  const int64_t n_tok = state.range(2);
  KernelConfig cfg = KernelConfig::best();
  cfg.batch_invariant = state.range(3) != 0;
  const bool down = state.range(4) != 0;  // ffn_down's shape instead of gate/up's
  const int64_t n_out = down ? 2048 : 5632, n_in = down ? 5632 : 2048;
  std::vector<Weights> ws;
  for (int i = 0; i < 8; ++i) {
    ws.push_back(make_weights(t, n_out, n_in));
    if (interleaved && interleave_helps(cfg, t)) {
      std::vector<uint8_t> packed(ws.back().data.size());
      interleave_rows16(t, ws.back().data.data(), n_out, n_in, packed.data());
      ws.back().data = std::move(packed);
      ws.back().view = {t, n_out, n_in, ws.back().data.data(), WeightLayout::kRows16};
    }
  }
  std::vector<float> x(n_tok * n_in), y(n_tok * n_out);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.01f * static_cast<float>(i % 97) - 0.4f;
  ThreadPool& pool = ThreadPool::global();
  for (auto _ : state)
    for (const Weights& w : ws) {
      matmul(cfg, w.view, x.data(), n_in, n_tok, y.data(), n_out, pool);
      benchmark::DoNotOptimize(y.data());
    }
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(ws[0].data.size()) * 8 * state.iterations() / 1e9,
                         benchmark::Counter::kIsRate);
  state.SetLabel(std::string(dtype_name(t)) + (interleaved ? " interleaved" : " rows") +
                 " T=" + std::to_string(n_tok) + (cfg.batch_invariant ? " batch-invariant" : "") +
                 (down ? " down" : ""));
}
BENCHMARK(BM_MatmulLayout)
    ->ArgsProduct({{static_cast<int64_t>(DType::kQ8_0), static_cast<int64_t>(DType::kQ4_0),
                    static_cast<int64_t>(DType::kQ4_K), static_cast<int64_t>(DType::kQ6_K)},
                   {0, 1},
                   {1, 64},
                   {0, 1},
                   {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(0.3);

// Activation quantization to 8 bits per 32-block (one 5632-wide row), vector vs scalar
// reference: GB/s of floats read.
void BM_QuantizeActivations(benchmark::State& state) {
  const bool ref = state.range(0) != 0;
  const Isa isa = supported_isas().back();
  const int64_t k = 5632;
  std::vector<float> x(k);
  for (int64_t i = 0; i < k; ++i) x[i] = 0.01f * static_cast<float>(i % 113) - 0.5f;
  Q8Activations a;
  for (auto _ : state) {
    if (ref)
      a.quantize_ref(x.data(), k);
    else
      a.quantize(x.data(), k, isa);
    benchmark::DoNotOptimize(a.q.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(4.0 * k * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(ref ? "scalar reference" : isa_name(isa).data());
}
BENCHMARK(BM_QuantizeActivations)->Arg(0)->Arg(1)->MinTime(0.2);

// Integer decode kernels (AVX-512 VNNI) vs the f32-activation kernel on the same rows, one
// thread: GB/s of weights.
void BM_DotQ8(benchmark::State& state) {
  const DType t = static_cast<DType>(state.range(0));
  const bool int8 = state.range(1) != 0;
  const int64_t n_out = 2048, n_in = 2048;
  const KernelConfig& cfg = KernelConfig::best();
  Weights w = make_weights(t, n_out, n_in);
  std::vector<float> x(n_in, 0.25f), y(n_out);
  Q8Activations xq;
  xq.quantize(x.data(), n_in, cfg.isa);
  const DotQ8Fn dq = dot_q8_best(cfg, t);
  if (int8 && dq == nullptr) {
    state.SkipWithError("no per-row integer kernel (AVX2 decodes through BM_Matmul T=1's kernel)");
    return;
  }
  const auto f32 = row_kernels(cfg.isa).dot[static_cast<int>(t)];
  const size_t rb = dtype_row_bytes(t, n_in);
  for (auto _ : state) {
    for (int64_t r = 0; r < n_out; ++r)
      y[r] = int8 ? dq(w.data.data() + r * rb, xq.q.data(), xq.d.data(), xq.sum.data(), n_in)
                  : f32(w.data.data() + r * rb, x.data(), n_in);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GB/s"] = benchmark::Counter(
      static_cast<double>(w.data.size()) * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(dtype_name(t)) + (int8 ? " int8 activations" : " f32 activations"));
}
BENCHMARK(BM_DotQ8)
    ->Args({static_cast<int64_t>(DType::kQ8_0), 0})
    ->Args({static_cast<int64_t>(DType::kQ8_0), 1})
    ->Args({static_cast<int64_t>(DType::kQ4_0), 0})
    ->Args({static_cast<int64_t>(DType::kQ4_0), 1})
    ->MinTime(0.2);

// One attention head over n_kv cached positions (decode): GB/s of K and V read.
void BM_Attention(benchmark::State& state) {
  const int64_t n_kv = state.range(0), dh = 64, stride = 4 * dh;
  const Isa isa = supported_isas().back();
  std::vector<float> q(dh, 0.1f), k(n_kv * stride, 0.01f), v(n_kv * stride, 0.02f), out(dh),
      scratch(n_kv);
  for (auto _ : state) {
    attention_head(isa, q.data(), k.data(), v.data(), stride, n_kv, dh, scratch.data(), out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GB/s"] = benchmark::Counter(2.0 * n_kv * dh * 4 * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Attention)->Arg(256)->Arg(1024)->Arg(4096)->MinTime(0.2);

// RMSNorm and SwiGLU over one tinyllama-sized row: GB/s touched.
void BM_RmsNormSwiGLU(benchmark::State& state) {
  const int64_t d = 2048, f = 5632;
  std::vector<float> x(d, 0.3f), w(d, 1.0f), o(d), g(f, 0.2f), u(f, 0.4f);
  for (auto _ : state) {
    rmsnorm(x.data(), w.data(), d, 1e-5f, o.data());
    silu_mul(g.data(), u.data(), f);
    benchmark::DoNotOptimize(o.data());
    benchmark::DoNotOptimize(g.data());
  }
  state.counters["GB/s"] = benchmark::Counter((3.0 * d + 3.0 * f) * 4 * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RmsNormSwiGLU)->MinTime(0.2);

// The streaming read bandwidth rme bench reports, as a benchmark (2 threads, 512 MB).
void BM_ReadBandwidth(benchmark::State& state) {
  double gbs = 0;
  for (auto _ : state)
    gbs =
        measure_read_bandwidth(size_t{512} << 20, 3, supported_isas().back(), ThreadPool::global());
  state.counters["GB/s"] = gbs;
}
BENCHMARK(BM_ReadBandwidth)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace rme

BENCHMARK_MAIN();
