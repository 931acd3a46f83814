// moefy: expert carving, pruning, k-means and MoE construction.
#include "moefy/carve.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "tensor/quant.h"

namespace rme {
namespace {

std::vector<int> top_k_sorted(const std::vector<float>& s, int k) {
  std::vector<int> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return s[a] > s[b]; });
  idx.resize(std::min<size_t>(k, idx.size()));
  std::sort(idx.begin(), idx.end());
  return idx;
}

// Dequantized rows [rows, cols] of a matrix view.
std::vector<float> to_f32(const MatView& v) {
  std::vector<float> out(static_cast<size_t>(v.n_out * v.n_in));
  const size_t row = dtype_row_bytes(v.dtype, v.n_in);
  for (int64_t r = 0; r < v.n_out; ++r)
    dequantize_row(v.dtype, static_cast<const uint8_t*>(v.data) + r * row, &out[r * v.n_in],
                   v.n_in);
  return out;
}

}  // namespace

Result<ExpertLayout> carve_experts(const ChannelScores& scores, double keep) {
  if (scores.empty() || scores[0].empty() || scores[0][0].empty())
    return invalid_argument("moefy: no activation statistics");
  if (!(keep > 0 && keep <= 1)) return invalid_argument("moefy: --keep must be in (0, 1]");
  const size_t G = scores.size(), L = scores[0].size(), F = scores[0][0].size();
  for (const auto& g : scores) {
    if (g.size() != L) return invalid_argument("moefy: groups disagree on the number of layers");
    for (const auto& l : g)
      if (l.size() != F) return invalid_argument("moefy: groups disagree on the FFN width");
  }
  const int k = std::max(1, static_cast<int>(std::lround(keep * F)));
  ExpertLayout out;
  out.shared.resize(L);
  out.experts.assign(G, std::vector<std::vector<int>>(L));
  for (size_t l = 0; l < L; ++l) {
    std::vector<int> count(F, 0);
    std::vector<std::vector<int>> kept(G);
    for (size_t g = 0; g < G; ++g) {
      kept[g] = top_k_sorted(scores[g][l], k);
      for (int c : kept[g]) ++count[c];
    }
    for (size_t c = 0; c < F; ++c)
      if (count[c] == static_cast<int>(G)) out.shared[l].push_back(static_cast<int>(c));
    for (size_t g = 0; g < G; ++g)
      for (int c : kept[g])
        if (count[c] != static_cast<int>(G)) out.experts[g][l].push_back(c);
  }
  return out;
}

std::vector<std::vector<int>> top_channels(const std::vector<std::vector<float>>& score,
                                           const std::vector<int>& widths) {
  std::vector<std::vector<int>> out;
  for (size_t l = 0; l < score.size(); ++l) out.push_back(top_k_sorted(score[l], widths[l]));
  return out;
}

Result<std::vector<int>> kmeans(const std::vector<std::vector<float>>& rows_in, int k,
                                uint64_t seed, int iterations) {
  const size_t n = rows_in.size();
  if (k < 1 || n < static_cast<size_t>(k))
    return invalid_argument("k-means: " + std::to_string(n) + " sequences for " +
                            std::to_string(k) + " clusters");
  const size_t dim = rows_in[0].size();
  std::vector<std::vector<float>> rows = rows_in;
  for (auto& r : rows) {
    double s = 0;
    for (float v : r) s += double{v} * v;
    const float inv = s > 0 ? static_cast<float>(1 / std::sqrt(s)) : 0.0f;
    for (float& v : r) v *= inv;
  }
  auto dist = [&](const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0;
    for (size_t i = 0; i < dim; ++i) d += double(a[i] - b[i]) * (a[i] - b[i]);
    return d;
  };
  std::mt19937_64 rng(seed);
  std::vector<std::vector<float>> centers = {rows[rng() % n]};
  std::vector<double> best(n, 1e300);
  while (static_cast<int>(centers.size()) < k) {  // k-means++: far rows are likelier seeds
    double total = 0;
    for (size_t i = 0; i < n; ++i)
      total += best[i] = std::min(best[i], dist(rows[i], centers.back()));
    double r = std::uniform_real_distribution<double>(0, total)(rng);
    size_t pick = 0;
    while (pick + 1 < n && (r -= best[pick]) > 0) ++pick;
    centers.push_back(rows[pick]);
  }
  std::vector<int> assign(n, -1);
  for (int it = 0; it < iterations; ++it) {
    bool changed = false;
    for (size_t i = 0; i < n; ++i) {
      int arg = 0;
      double bd = 1e300;
      for (int c = 0; c < k; ++c)
        if (double d = dist(rows[i], centers[c]); d < bd) bd = d, arg = c;
      changed |= assign[i] != arg;
      assign[i] = arg;
    }
    if (!changed) break;
    for (int c = 0; c < k; ++c) {
      std::vector<double> sum(dim, 0);
      int cnt = 0;
      for (size_t i = 0; i < n; ++i)
        if (assign[i] == c) {
          ++cnt;
          for (size_t j = 0; j < dim; ++j) sum[j] += rows[i][j];
        }
      if (cnt == 0) continue;  // keep an empty cluster's center where it was
      for (size_t j = 0; j < dim; ++j) centers[c][j] = static_cast<float>(sum[j] / cnt);
    }
  }
  return assign;
}

namespace {

// Rows `ch` of gate/up ([F, D]) or columns `ch` of down ([D, F]) of a dense FFN, as f32: what
// build_moe's copies hold, cut from the parent one slice at a time.
std::shared_ptr<Buffer> cut_slice(const MatView& w, const std::vector<int>& ch, bool columns) {
  const int64_t W = static_cast<int64_t>(ch.size());
  const size_t row = dtype_row_bytes(w.dtype, w.n_in);
  const auto* base = static_cast<const uint8_t*>(w.data);
  if (!columns) {
    auto out = std::make_shared<Buffer>(static_cast<size_t>(W * w.n_in) * sizeof(float));
    for (int64_t i = 0; i < W; ++i)
      dequantize_row(w.dtype, base + ch[i] * row, out->as<float>() + i * w.n_in, w.n_in);
    return out;
  }
  auto out = std::make_shared<Buffer>(static_cast<size_t>(w.n_out * W) * sizeof(float));
  std::vector<float> r(static_cast<size_t>(w.n_in));
  for (int64_t d = 0; d < w.n_out; ++d) {
    dequantize_row(w.dtype, base + d * row, r.data(), w.n_in);
    for (int64_t i = 0; i < W; ++i) out->as<float>()[d * W + i] = r[ch[i]];
  }
  return out;
}

}  // namespace

Result<Model> build_moe(const Model& dense, const ExpertLayout& layout,
                        const std::vector<std::string>& names, bool deferred) {
  const LlamaConfig& c = dense.config;
  if (dense.moe.is_moe() || !c.n_ff_layer.empty())
    return invalid_argument(dense.source + ": moefy needs a dense model with uniform FFN width");
  if (static_cast<int>(layout.shared.size()) != c.n_layer)
    return invalid_argument("moefy: layout has " + std::to_string(layout.shared.size()) +
                            " layers, the model " + std::to_string(c.n_layer));
  Model m;
  m.config = c;
  m.weights = dense.weights;
  m.files = dense.files;
  m.buffers = dense.buffers;
  m.source = dense.source;
  m.format = dense.format;
  MoeConfig& moe = m.moe;
  moe.n_expert = static_cast<int>(layout.experts.size());
  moe.parent_n_ff = c.n_ff;
  moe.parent = dense.source;
  moe.expert_names = names;
  moe.shared_channels = layout.shared;
  moe.expert_channels = layout.experts;
  RME_RETURN_IF_ERROR(moe.validate(c.n_layer));
  m.config.n_ff_layer.clear();
  const int64_t D = c.n_embd, F = c.n_ff;
  // Copies rows `ch` of gate/up ([F, D]) and columns `ch` of down ([D, F]) into new f32 matrices.
  auto slice = [&](const std::vector<float>& gate, const std::vector<float>& up,
                   const std::vector<float>& down, const std::vector<int>& ch, MatView& g,
                   MatView& u, MatView& d) {
    const int64_t W = static_cast<int64_t>(ch.size());
    std::vector<float> gs(W * D), us(W * D), ds(D * W);
    for (int64_t i = 0; i < W; ++i) {
      std::copy_n(&gate[ch[i] * D], D, &gs[i * D]);
      std::copy_n(&up[ch[i] * D], D, &us[i * D]);
      for (int64_t r = 0; r < D; ++r) ds[r * W + i] = down[r * F + ch[i]];
    }
    g = {DType::kF32, W, D, W ? model_own_floats(m, gs) : nullptr};
    u = {DType::kF32, W, D, W ? model_own_floats(m, us) : nullptr};
    d = {DType::kF32, D, W, W ? model_own_floats(m, ds) : nullptr};
  };
  if (deferred) {
    for (int l = 0; l < c.n_layer; ++l) {
      LayerWeights& L = m.weights.layers[l];
      auto shape = [&](const std::vector<int>& ch, MatView& g, MatView& u, MatView& d) {
        const int64_t W = static_cast<int64_t>(ch.size());
        g = {DType::kF32, W, D, nullptr};
        u = {DType::kF32, W, D, nullptr};
        d = {DType::kF32, D, W, nullptr};
      };
      shape(layout.shared[l], L.w_gate, L.w_up, L.w_down);
      m.config.n_ff_layer.push_back(static_cast<int>(layout.shared[l].size()));
      L.experts.assign(moe.n_expert, {});
      for (int e = 0; e < moe.n_expert; ++e)
        shape(layout.experts[e][l], L.experts[e].gate, L.experts[e].up, L.experts[e].down);
    }
    const Model* parent = &dense;
    m.deferred = [parent, layout](const WeightId& id) -> Result<std::shared_ptr<Buffer>> {
      using K = WeightId::Kind;
      if (id.router || id.layer < 0 || id.layer >= static_cast<int>(layout.shared.size()))
        return internal_error("moefy: no deferred weight for this id");
      const LayerWeights& src = parent->weights.layers[id.layer];
      const bool expert = id.kind == K::kExpGate || id.kind == K::kExpUp || id.kind == K::kExpDown;
      if (expert && (id.expert < 0 || id.expert >= static_cast<int>(layout.experts.size())))
        return internal_error("moefy: deferred expert out of range");
      const std::vector<int>& ch =
          expert ? layout.experts[id.expert][id.layer] : layout.shared[id.layer];
      switch (id.kind) {
        case K::kGate:
        case K::kExpGate:
          return cut_slice(src.w_gate, ch, false);
        case K::kUp:
        case K::kExpUp:
          return cut_slice(src.w_up, ch, false);
        case K::kDown:
        case K::kExpDown:
          return cut_slice(src.w_down, ch, true);
        default:
          return internal_error("moefy: no deferred weight of this kind");
      }
    };
    return m;
  }
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& src = dense.weights.layers[l];
    const std::vector<float> gate = to_f32(src.w_gate), up = to_f32(src.w_up),
                             down = to_f32(src.w_down);
    LayerWeights& L = m.weights.layers[l];
    slice(gate, up, down, layout.shared[l], L.w_gate, L.w_up, L.w_down);
    m.config.n_ff_layer.push_back(static_cast<int>(layout.shared[l].size()));
    L.experts.assign(moe.n_expert, {});
    for (int e = 0; e < moe.n_expert; ++e)
      slice(gate, up, down, layout.experts[e][l], L.experts[e].gate, L.experts[e].up,
            L.experts[e].down);
  }
  return m;
}

}  // namespace rme
