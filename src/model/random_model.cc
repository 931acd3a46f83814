// model: random-weight models.
#include "model/random_model.h"

#include <algorithm>
#include <cmath>

#include "core/hash.h"
#include "tensor/quant.h"

namespace rme {
Result<LlamaConfig> named_shape(const std::string& name) {
  LlamaConfig c;
  c.rope_style = RopeStyle::kInterleaved;
  c.rms_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  if (name == "tinyllama") {
    c.n_vocab = 32000, c.n_embd = 2048, c.n_layer = 22, c.n_head = 32, c.n_head_kv = 4;
    c.n_ff = 5632, c.n_ctx = 2048;
  } else if (name == "llama2-7b") {
    c.n_vocab = 32000, c.n_embd = 4096, c.n_layer = 32, c.n_head = 32, c.n_head_kv = 32;
    c.n_ff = 11008, c.n_ctx = 4096;
  } else if (name == "rme-mini") {
    c.n_vocab = 4096, c.n_embd = 256, c.n_layer = 6, c.n_head = 8, c.n_head_kv = 4;
    c.n_ff = 1024, c.n_ctx = 256, c.tied_output = true;
  } else {
    return invalid_argument("unknown shape '" + name + "' (tinyllama, llama2-7b, rme-mini)");
  }
  c.head_dim = c.n_embd / c.n_head;
  return c;
}

std::vector<std::string> shape_names() { return {"tinyllama", "llama2-7b", "rme-mini"}; }

MatView random_matrix(Model& m, int64_t rows, int64_t cols, DType type, uint64_t seed,
                      ThreadPool& pool) {
  type = dtype_for_row(type, cols);
  const size_t row_bytes = dtype_row_bytes(type, cols);
  auto buf = std::make_shared<Buffer>(std::max<size_t>(1, row_bytes * rows));
  uint8_t* out = static_cast<uint8_t*>(buf->data());
  // Uniform on [-a, a] with a = 0.02 * sqrt(3): standard deviation 0.02, like N(0, 0.02) inits.
  const float a = 0.02f * std::sqrt(3.0f);
  pool.parallel_for(rows, 16, [&](int64_t b, int64_t e, int) {
    std::vector<float> row(cols);
    for (int64_t r = b; r < e; ++r) {
      uint64_t h = splitmix(seed ^ splitmix(static_cast<uint64_t>(r)));
      for (int64_t c = 0; c < cols; ++c) {
        h = splitmix(h);
        row[c] = a * (static_cast<float>(h >> 40) * (2.0f / 16777216.0f) - 1.0f);
      }
      quantize_row(type, row.data(), out + r * row_bytes, cols);
    }
  });
  m.buffers.push_back(buf);
  return MatView{type, rows, cols, buf->data()};
}

Model random_model(const LlamaConfig& c, DType type, uint64_t seed, ThreadPool& pool) {
  Model m;
  m.config = c;
  m.random_weights = true;
  m.source = "random";
  m.format = "memory";
  uint64_t k = seed * 1000;
  auto mat = [&](int64_t rows, int64_t cols) {
    return random_matrix(m, rows, cols, type, ++k, pool);
  };
  auto ones = [&](int64_t n) { return model_own_floats(m, std::vector<float>(n, 1.0f)); };
  const int64_t D = c.n_embd;
  m.weights.tok_embd = mat(c.n_vocab, D);
  for (int l = 0; l < c.n_layer; ++l) {
    LayerWeights L;
    L.attn_norm = ones(D);
    L.wq = mat(c.q_dim(), D);
    L.wk = mat(c.kv_dim(), D);
    L.wv = mat(c.kv_dim(), D);
    L.wo = mat(D, c.q_dim());
    L.ffn_norm = ones(D);
    const int64_t F = c.ffn_width(l);
    L.w_gate = mat(F, D);
    L.w_up = mat(F, D);
    L.w_down = mat(D, F);
    m.weights.layers.push_back(L);
  }
  m.weights.out_norm = ones(D);
  m.weights.output = c.tied_output ? m.weights.tok_embd : mat(c.n_output(), D);
  return m;
}

Model random_moe(const LlamaConfig& c, int n_expert, double active, double shared, DType type,
                 uint64_t seed, ThreadPool& pool) {
  const int F = c.n_ff;
  auto round32 = [](double v) { return std::max(32, static_cast<int>(std::lround(v / 32)) * 32); };
  const int S = round32(F * shared), W = std::max(32, round32(F * active) - S);
  LlamaConfig shared_cfg = c;
  shared_cfg.n_ff_layer.assign(c.n_layer, S);  // the backbone's FFNs are the shared experts
  Model m = random_model(shared_cfg, type, seed, pool);
  MoeConfig& moe = m.moe;
  moe.n_expert = n_expert;
  moe.parent_n_ff = F;
  for (int e = 0; e < n_expert; ++e) moe.expert_names.push_back("random" + std::to_string(e));
  std::vector<int> sh(S);
  for (int i = 0; i < S; ++i) sh[i] = i;
  moe.shared_channels.assign(c.n_layer, sh);
  moe.expert_channels.assign(n_expert, std::vector<std::vector<int>>(c.n_layer));
  for (int e = 0; e < n_expert; ++e) {
    std::vector<int> ch(W);
    for (int i = 0; i < W; ++i) ch[i] = S + (e * W + i) % std::max(1, F - S);
    std::sort(ch.begin(), ch.end());
    ch.erase(std::unique(ch.begin(), ch.end()), ch.end());
    for (auto& l : moe.expert_channels[e]) l = ch;
  }
  uint64_t k = seed * 1000 + 500000;  // expert matrices: a stream apart from the backbone's
  const int64_t D = c.n_embd;
  // Experts after the backbone, expert by expert (as the writers lay them out).
  for (int e = 0; e < n_expert; ++e)
    for (int l = 0; l < c.n_layer; ++l) {
      ExpertWeights x;
      const int64_t w = static_cast<int64_t>(moe.expert_channels[e][l].size());
      x.gate = random_matrix(m, w, D, type, ++k, pool);
      x.up = random_matrix(m, w, D, type, ++k, pool);
      x.down = random_matrix(m, D, w, type, ++k, pool);
      m.weights.layers[l].experts.push_back(x);
    }
  return m;
}

}  // namespace rme
