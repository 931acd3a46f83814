// model: Llama forward (RMSNorm -> GQA attention with RoPE -> RMSNorm -> SwiGLU), with Read-ME
// routing: the shared expert runs like a dense FFN, routed experts run on their tokens only.
#include "model/forward.h"

#include <algorithm>
#include <cmath>

#include "core/hash.h"
#include "kernels/ops.h"
#include "tensor/quant.h"

namespace rme {
namespace {

// Writes the k largest of scores[0..n) (ties: lower index) and their softmax weights over those k.
void top_k(const float* scores, int n, int k, int* experts, float* weights, bool softmax_weights) {
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int e = 0; e < n; ++e) {
      bool taken = false;
      for (int i = 0; i < j; ++i) taken |= experts[i] == e;
      if (!taken && (best < 0 || scores[e] > scores[best])) best = e;
    }
    experts[j] = best;
  }
  if (k == 1 || !softmax_weights) {
    for (int j = 0; j < k; ++j) weights[j] = 1.0f / k;
    return;
  }
  float sum = 0;
  for (int j = 0; j < k; ++j) sum += weights[j] = std::exp(scores[experts[j]] - scores[experts[0]]);
  for (int j = 0; j < k; ++j) weights[j] /= sum;
}

}  // namespace

Forward::Forward(const Model& model, int max_tokens, ThreadPool& pool, const KernelConfig& kernels)
    : model_(model), pool_(pool), kernels_(kernels), max_tokens_(std::max(1, max_tokens)) {
  const LlamaConfig& c = model.config;
  const size_t t = static_cast<size_t>(max_tokens_);
  inv_freq_ = c.rope_inv_freq();
  x_.resize(t * c.n_embd);
  xb_.resize(t * std::max(c.n_embd, c.q_dim()));
  q_.resize(t * c.q_dim());
  k_.resize(t * c.kv_dim());
  v_.resize(t * c.kv_dim());
  att_.resize(t * c.q_dim());
  gate_.resize(t * c.max_ffn_width());
  up_.resize(t * c.max_ffn_width());
  pos_.resize(t);
  view_.resize(t);
  logit_rows_.reserve(t);
  const MoeConfig& moe = model.moe;
  if (moe.is_moe()) {
    int width = 0;
    for (int e = 0; e < moe.n_expert; ++e)
      for (int l = 0; l < c.n_layer; ++l) width = std::max(width, moe.expert_width(e, l));
    const size_t rows = t * moe.n_expert;  // top-k <= n_expert rows per token
    route_expert_.resize(rows);
    route_weight_.resize(rows);
    route_scores_.resize(rows);
    xg_.resize(rows * c.n_embd);
    eo_.resize(rows * c.n_embd);
    eg_.resize(rows * width);
    eu_.resize(rows * width);
    slot_.resize(rows);
    top_k_ = moe.top_k;
    if (model.router)
      router_fwd_ = std::make_unique<Forward>(*model.router, max_tokens_, pool, kernels_);
  }
}

Forward::~Forward() = default;

Status Forward::set_routing(const RoutingOptions& o) {
  const MoeConfig& moe = model_.moe;
  if (!moe.is_moe()) return invalid_argument("routing: the model is dense (no experts)");
  const int k = o.top_k > 0 ? o.top_k : moe.top_k;
  if (k < 1 || k > moe.n_expert)
    return invalid_argument("routing: top-k " + std::to_string(k) + " outside 1.." +
                            std::to_string(moe.n_expert));
  switch (o.mode) {
    case Routing::kRouter:
      if (!model_.router)
        return invalid_argument(model_.source +
                                ": the MoE has no router yet (run `rme train-router`, or pick "
                                "--routing oracle|random|fixed)");
      break;
    case Routing::kOracle:
      if (o.dense == nullptr || o.dense->moe.is_moe() ||
          o.dense->config.n_layer != model_.config.n_layer ||
          o.dense->config.ffn_width(0) != moe.parent_n_ff ||
          o.dense->config.n_vocab != model_.config.n_vocab)
        return invalid_argument(
            "routing: oracle routing needs the dense parent (same layers, vocabulary and FFN "
            "width " +
            std::to_string(moe.parent_n_ff) + ")");
      dense_fwd_ = std::make_unique<Forward>(*o.dense, max_tokens_, pool_, kernels_);
      dense_kv_.reset();
      break;
    case Routing::kFixed:
      if (o.fixed_expert < 0 || o.fixed_expert >= moe.n_expert)
        return invalid_argument("routing: expert " + std::to_string(o.fixed_expert) +
                                " outside 0.." + std::to_string(moe.n_expert - 1));
      if (k != 1) return invalid_argument("routing: a fixed expert means top-k 1");
      break;
    case Routing::kLayerGate:
      if (!moe.has_layer_gate)
        return invalid_argument(model_.source + ": the MoE has no layer-wise gates");
      break;
    case Routing::kRandom:
      break;
  }
  routing_ = o;
  top_k_ = k;
  return Status::Ok();
}

Status Forward::run(std::span<const int> tokens, int pos, KvCache& kv, float* logits,
                    bool all_logits) {
  const LlamaConfig& c = model_.config;
  if (pos < 0 || pos + static_cast<int64_t>(tokens.size()) > kv.n_ctx())
    return invalid_argument("forward: positions " + std::to_string(pos) + ".." +
                            std::to_string(pos + tokens.size()) + " exceed the context of " +
                            std::to_string(kv.n_ctx()));
  for (int t : tokens)
    if (t < 0 || t >= c.n_vocab)
      return invalid_argument("forward: token id " + std::to_string(t) + " outside [0, " +
                              std::to_string(c.n_vocab) + ")");
  // Attention scores for every thread, sized by the cache actually used (not the model's maximum
  // context, which a config may set to millions).
  const size_t need = static_cast<size_t>(pool_.n_threads()) * kv.n_ctx();
  if (scratch_.size() < need) scratch_.resize(need);
  views_.assign(1, kv.view());
  size_t done = 0;
  while (done < tokens.size()) {
    int n = static_cast<int>(std::min<size_t>(max_tokens_, tokens.size() - done));
    bool last = done + n == tokens.size();
    float* out = all_logits ? logits + done * c.n_output() : (last ? logits : nullptr);
    const int p = pos + static_cast<int>(done);
    if (model_.moe.is_moe())
      RME_RETURN_IF_ERROR(route(tokens.data() + done, n, p, kv.router(), kv.n_ctx(),
                                route_expert_.data(), route_weight_.data()));
    for (int t = 0; t < n; ++t) {
      pos_[t] = p + t;
      view_[t] = 0;
    }
    logit_rows_.clear();
    if (out != nullptr)
      for (int t = all_logits ? 0 : n - 1; t < n; ++t) logit_rows_.push_back(t);
    run_tokens(tokens.data() + done, n, out);
    done += n;
  }
  return Status::Ok();
}

Status Forward::run_batch(std::span<const SeqChunk> chunks, float* logits) {
  const LlamaConfig& c = model_.config;
  const bool moe = model_.moe.is_moe();
  if (moe && routing_.mode == Routing::kOracle)
    return invalid_argument("forward: oracle routing cannot run batched");
  const bool routed_ahead = moe && routing_.mode != Routing::kLayerGate;
  const int k = top_k_;
  int n = 0, max_pos = 0;
  views_.clear();
  logit_rows_.clear();
  batch_tokens_.clear();
  for (const SeqChunk& ch : chunks) {
    const int m = static_cast<int>(ch.tokens.size());
    if (m == 0) return invalid_argument("forward: empty chunk in a batch");
    if (n + m > max_tokens_)
      return invalid_argument("forward: batch of more than " + std::to_string(max_tokens_) +
                              " tokens");
    if (ch.pos < 0) return invalid_argument("forward: negative position");
    if (routed_ahead && (static_cast<int>(ch.experts.size()) != m * k ||
                         (!ch.weights.empty() && ch.weights.size() != ch.experts.size())))
      return invalid_argument("forward: an MoE chunk needs tokens x top-k experts");
    for (int i = 0; i < m; ++i) {
      const int tok = ch.tokens[i];
      if (tok < 0 || tok >= c.n_vocab)
        return invalid_argument("forward: token id " + std::to_string(tok) + " outside [0, " +
                                std::to_string(c.n_vocab) + ")");
      batch_tokens_.push_back(tok);
      pos_[n + i] = ch.pos + i;
      view_[n + i] = static_cast<int>(views_.size());
      if (routed_ahead)
        for (int j = 0; j < k; ++j) {
          const int e = ch.experts[i * k + j];
          if (e < 0 || e >= model_.moe.n_expert) return invalid_argument("forward: bad expert id");
          route_expert_[(n + i) * k + j] = e;
          route_weight_[(n + i) * k + j] = ch.weights.empty() ? 1.0f / k : ch.weights[i * k + j];
        }
    }
    views_.push_back(ch.kv);
    n += m;
    max_pos = std::max(max_pos, ch.pos + m);
    if (ch.want_logits) logit_rows_.push_back(n - 1);
  }
  if (n == 0) return Status::Ok();
  const size_t need = static_cast<size_t>(pool_.n_threads()) * max_pos;
  if (scratch_.size() < need) scratch_.resize(need);
  run_tokens(batch_tokens_.data(), n, logit_rows_.empty() ? nullptr : logits);
  return Status::Ok();
}

Status Forward::route_tokens(std::span<const int> tokens, int pos, KvCache* router_kv, int* experts,
                             float* weights) {
  const MoeConfig& moe = model_.moe;
  if (!moe.is_moe()) return invalid_argument("routing: the model is dense (no experts)");
  if (routing_.mode == Routing::kOracle || routing_.mode == Routing::kLayerGate)
    return invalid_argument("routing: oracle and layer-gate routing need the backbone");
  for (int t : tokens)
    if (t < 0 || t >= model_.config.n_vocab)
      return invalid_argument("routing: token id " + std::to_string(t) + " out of range");
  const int n_ctx = router_kv ? router_kv->n_ctx() : 0;
  if (routing_.mode == Routing::kRouter &&
      (pos < 0 || pos + static_cast<int64_t>(tokens.size()) > n_ctx))
    return invalid_argument("routing: positions beyond the router cache");
  for (size_t done = 0; done < tokens.size();) {
    const int n = static_cast<int>(std::min<size_t>(max_tokens_, tokens.size() - done));
    RME_RETURN_IF_ERROR(route(tokens.data() + done, n, pos + static_cast<int>(done), router_kv,
                              n_ctx, experts + done * top_k_, weights + done * top_k_));
    done += n;
  }
  return Status::Ok();
}

// Fills experts/weights [n_tok, k] for a chunk (all modes but kLayerGate, which routes per layer).
Status Forward::route(const int* tokens, int n_tok, int pos, KvCache* router_kv, int n_ctx,
                      int* experts, float* weights) {
  const MoeConfig& moe = model_.moe;
  const int E = moe.n_expert, k = top_k_;
  switch (routing_.mode) {
    case Routing::kRouter: {
      if (!router_fwd_ || router_kv == nullptr)
        return invalid_argument(
            "forward: the MoE has no router, or the KV cache was not built "
            "from the model");
      RME_RETURN_IF_ERROR(router_fwd_->run(std::span<const int>(tokens, n_tok), pos, *router_kv,
                                           route_scores_.data(), true));
      for (int t = 0; t < n_tok; ++t)
        top_k(&route_scores_[t * E], E, k, &experts[t * k], &weights[t * k], true);
      break;
    }
    case Routing::kOracle: {
      if (!dense_kv_ || dense_kv_->n_ctx() != n_ctx)
        dense_kv_ = std::make_unique<KvCache>(*routing_.dense, n_ctx);
      std::fill_n(route_scores_.begin(), static_cast<size_t>(n_tok) * E, 0.0f);
      dense_fwd_->set_ffn_probe([&](int layer, int n, const float* act, int64_t width) {
        add_expert_mass(moe, layer, act, n, width, route_scores_.data());
      });
      RME_RETURN_IF_ERROR(
          dense_fwd_->run(std::span<const int>(tokens, n_tok), pos, *dense_kv_, nullptr, false));
      for (int t = 0; t < n_tok; ++t)
        top_k(&route_scores_[t * E], E, k, &experts[t * k], &weights[t * k], false);
      break;
    }
    case Routing::kRandom:
      for (int t = 0; t < n_tok; ++t) {
        uint64_t h =
            splitmix(routing_.seed ^ splitmix(static_cast<uint64_t>(pos + t) * 1315423911u +
                                              static_cast<uint64_t>(tokens[t])));
        for (int e = 0; e < E; ++e)
          route_scores_[t * E + e] = static_cast<float>((h = splitmix(h)) >> 40);
        top_k(&route_scores_[t * E], E, k, &experts[t * k], &weights[t * k], false);
      }
      break;
    case Routing::kFixed:
      for (int t = 0; t < n_tok; ++t) {
        experts[t] = routing_.fixed_expert;
        weights[t] = 1.0f;
      }
      break;
    case Routing::kLayerGate:
      return Status::Ok();
  }
  if (observer_) observer_(-1, pos, n_tok, k, experts);
  return Status::Ok();
}

void Forward::layer_gate_route(const LayerWeights& L, int layer, int n_tok) {
  const int E = model_.moe.n_expert, k = top_k_;
  const int64_t D = model_.config.n_embd;
  matmul(kernels_, L.layer_gate, xb_.data(), D, n_tok, route_scores_.data(), E, pool_);  // [T, E]
  for (int t = 0; t < n_tok; ++t)
    top_k(&route_scores_[t * E], E, k, &route_expert_[t * k], &route_weight_[t * k], true);
  if (observer_) observer_(layer, pos_[0], n_tok, k, route_expert_.data());
}

// Adds each token's routed expert outputs to x_. Tokens are grouped by expert so each expert's
// weights are read once per chunk, whatever the number of tokens that chose it.
void Forward::expert_ffn(const LayerWeights& L, int layer, int n_tok) {
  const int64_t D = model_.config.n_embd;
  const int k = top_k_;
  for (int e = 0; e < model_.moe.n_expert; ++e) {
    int n = 0;
    for (int s = 0; s < n_tok * k; ++s)
      if (route_expert_[s] == e) {
        slot_[n] = s;
        std::copy_n(&xb_[(s / k) * D], D, &xg_[n * D]);
        ++n;
      }
    const ExpertWeights& x = e < static_cast<int>(expert_table_.size()) && expert_table_[e]
                                 ? expert_table_[e][layer]
                                 : L.experts[e];
    const int64_t W = x.gate.n_out;
    if (n == 0 || W == 0) continue;
    matmul(kernels_, x.gate, xg_.data(), D, n, eg_.data(), W, pool_);  // [n, W]
    matmul(kernels_, x.up, xg_.data(), D, n, eu_.data(), W, pool_);    // [n, W]
    silu_mul(eg_.data(), eu_.data(), n * W);
    matmul(kernels_, x.down, eg_.data(), W, n, eo_.data(), D, pool_);  // [n, D]
    for (int i = 0; i < n; ++i) {
      const float w = route_weight_[slot_[i]];
      float* dst = &x_[(slot_[i] / k) * D];
      for (int64_t d = 0; d < D; ++d) dst[d] += w * eo_[i * D + d];
    }
  }
}

void Forward::run_tokens(const int* tokens, int n_tok, float* logits) {
  const LlamaConfig& c = model_.config;
  const ModelWeights& w = model_.weights;
  const int64_t D = c.n_embd, Dh = c.head_dim, QD = c.q_dim(), KVD = c.kv_dim();
  const int64_t H = c.n_head, group = c.n_head / c.n_head_kv;
  const size_t emb_row = dtype_row_bytes(w.tok_embd.dtype, D);
  const bool moe = model_.moe.is_moe();
  int max_pos = 0;
  for (int t = 0; t < n_tok; ++t) max_pos = std::max(max_pos, pos_[t] + 1);
  const int64_t scratch_len = max_pos;

  for (int t = 0; t < n_tok; ++t)  // x[T, D] = embedding rows
    dequantize_row(w.tok_embd.dtype,
                   static_cast<const uint8_t*>(w.tok_embd.data) + emb_row * tokens[t], &x_[t * D],
                   D);

  for (int il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = w.layers[il];
    for (int t = 0; t < n_tok; ++t) rmsnorm(&x_[t * D], L.attn_norm, D, c.rms_eps, &xb_[t * D]);
    matmul(kernels_, L.wq, xb_.data(), D, n_tok, q_.data(), QD, pool_);   // q[T, H*Dh]
    matmul(kernels_, L.wk, xb_.data(), D, n_tok, k_.data(), KVD, pool_);  // k[T, Hkv*Dh]
    matmul(kernels_, L.wv, xb_.data(), D, n_tok, v_.data(), KVD, pool_);  // v[T, Hkv*Dh]
    for (int t = 0; t < n_tok; ++t) {
      const KvView& kv = views_[view_[t]];
      if (L.bq) {  // q/k/v biases (Qwen2), before RoPE
        for (int i = 0; i < QD; ++i) q_[t * QD + i] += L.bq[i];
        for (int i = 0; i < KVD; ++i) k_[t * KVD + i] += L.bk[i];
        for (int i = 0; i < KVD; ++i) v_[t * KVD + i] += L.bv[i];
      }
      rope(&q_[t * QD], H, Dh, pos_[t], inv_freq_.data(), c.rope_style);
      rope(&k_[t * KVD], c.n_head_kv, Dh, pos_[t], inv_freq_.data(), c.rope_style);
      const int64_t at = kv.offset(il, pos_[t]);
      std::copy_n(&k_[t * KVD], KVD, kv.k + at);
      std::copy_n(&v_[t * KVD], KVD, kv.v + at);
    }
    // att[T, H*Dh]: each (token, head) attends causally over its sequence's positions 0..pos
    // (the last sliding_window of them when the model has a window).
    pool_.parallel_for(n_tok * H, 1, [&](int64_t b, int64_t e, int thread) {
      float* scratch = scratch_.data() + thread * scratch_len;
      for (int64_t i = b; i < e; ++i) {
        const int64_t t = i / H, h = i % H, off = (h / group) * Dh;
        const KvView& kv = views_[view_[t]];
        const int64_t base = il * kv.layer_stride + off;
        const int64_t first =
            c.sliding_window > 0 ? std::max<int64_t>(0, pos_[t] + 1 - c.sliding_window) : 0;
        attention_head_paged_window(kernels_.isa, &q_[t * QD + h * Dh], kv.k + base, kv.v + base,
                                    kv.blocks, kv.block_size, kv.block_stride, kv.stride, first,
                                    pos_[t] + 1, Dh, scratch, &att_[t * QD + h * Dh]);
      }
    });
    matmul(kernels_, L.wo, att_.data(), QD, n_tok, xb_.data(), D, pool_);  // [T, D]
    for (int64_t i = 0; i < n_tok * D; ++i) x_[i] += xb_[i];

    for (int t = 0; t < n_tok; ++t) rmsnorm(&x_[t * D], L.ffn_norm, D, c.rms_eps, &xb_[t * D]);
    if (moe && routing_.mode == Routing::kLayerGate) layer_gate_route(L, il, n_tok);
    // Dense FFN, or the MoE's shared expert: F = this layer's width (0 = none).
    const int64_t F = L.w_gate.n_out;
    if (F > 0) {
      matmul(kernels_, L.w_gate, xb_.data(), D, n_tok, gate_.data(), F, pool_);  // [T, F]
      matmul(kernels_, L.w_up, xb_.data(), D, n_tok, up_.data(), F, pool_);      // [T, F]
      silu_mul(gate_.data(), up_.data(), n_tok * F);
      if (probe_) probe_(il, n_tok, gate_.data(), F);
    }
    if (moe)
      expert_ffn(L, il, n_tok);  // before the shared output: xb_ still holds the normed input
    if (F > 0) {
      matmul(kernels_, L.w_down, gate_.data(), F, n_tok, xb_.data(), D, pool_);  // [T, D]
      for (int64_t i = 0; i < n_tok * D; ++i) x_[i] += xb_[i];
    }
  }
  if (logits == nullptr || logit_rows_.empty()) return;
  // Normed rows that need logits, packed to the front of xb_ (row i <= logit_rows_[i]).
  const int n_rows = static_cast<int>(logit_rows_.size());
  for (int i = 0; i < n_rows; ++i)
    rmsnorm(&x_[logit_rows_[i] * D], w.out_norm, D, c.rms_eps, &xb_[i * D]);
  matmul(kernels_, w.output, xb_.data(), D, n_rows, logits, c.n_output(), pool_);  // [rows, V]
}

}  // namespace rme
