// bench: matmul throughput per ISA and weight dtype — GB/s of weights for one token (decode,
// memory-bound) and GFLOP/s for 64 tokens (prefill). Run: build/bin/kernels_bench
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/matmul.h"
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
  if (!set_active_isa(isa)) {
    state.SkipWithError("ISA not supported");
    return;
  }
  const int64_t n_out = 4096, n_in = 4096;
  Weights w = make_weights(t, n_out, n_in);
  std::vector<float> x(n_tok * n_in, 0.5f), y(n_tok * n_out);
  ThreadPool& pool = ThreadPool::global();
  for (auto _ : state) {
    matmul(w.view, x.data(), n_in, n_tok, y.data(), n_out, pool);
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
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0})
      for (int64_t n_tok : {1, 64})
        b->Args({static_cast<int64_t>(isa), static_cast<int64_t>(t), n_tok});
}

BENCHMARK(BM_Matmul)->Apply(args)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(0.2);

}  // namespace
}  // namespace rme

BENCHMARK_MAIN();
