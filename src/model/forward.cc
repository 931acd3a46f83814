// model: Llama forward (RMSNorm -> GQA attention with RoPE -> RMSNorm -> SwiGLU), with Read-ME
// routing: the shared expert runs like a dense FFN, routed experts run on their tokens only.
#include "model/forward.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "tensor/quant.h"

namespace rme {
Forward::Forward(const Model& model, int max_tokens, ThreadPool& pool, const KernelConfig& kernels)
    : model_(model), pool_(pool), kernels_(kernels), max_tokens_(std::max(1, max_tokens)) {
  RME_CHECK(!model.deferred) << "a model with deferred weights is for writing, not running";
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
    xg_.resize(rows * c.n_embd);
    eo_.resize(rows * c.n_embd);
    eg_.resize(rows * width);
    eu_.resize(rows * width);
    slot_.resize(rows);
    if (model.router) {  // the default: the model's trained router at its own top-k
      auto r = PregateRouter::create(model, moe.top_k, max_tokens_, pool, kernels_);
      if (r.ok()) router_ = std::move(*r);
    }
  }
}

Forward::~Forward() = default;

Status Forward::set_routing(const RoutingOptions& o) {
  RME_ASSIGN_OR_RETURN(auto router, make_router(model_, o, max_tokens_, pool_, kernels_));
  set_router(std::move(router));
  return Status::Ok();
}

// Route buffers hold n_expert choices per token: a router choosing more is a bug.
void Forward::set_router(std::unique_ptr<TokenRouter> router) {
  RME_CHECK(router == nullptr || (router->k() >= 1 && router->k() <= model_.moe.n_expert));
  router_ = std::move(router);
  layer_router_.reset();
}

void Forward::set_layer_router(std::unique_ptr<LayerRouter> router) {
  RME_CHECK(router == nullptr || (router->k() >= 1 && router->k() <= model_.moe.n_expert));
  layer_router_ = std::move(router);
}

int Forward::route_k() const {
  if (layer_router_) return layer_router_->k();
  return router_ ? router_->k() : model_.moe.top_k;
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
  // Attention scores for every thread: one row per query head of a K/V group
  // (attention_group_paged).
  const size_t need =
      static_cast<size_t>(pool_.n_threads()) * kv.n_ctx() * (c.n_head / std::max(1, c.n_head_kv));
  if (scratch_.size() < need) scratch_.resize(need);
  views_.assign(1, kv.view());
  size_t done = 0;
  while (done < tokens.size()) {
    int n = static_cast<int>(std::min<size_t>(max_tokens_, tokens.size() - done));
    bool last = done + n == tokens.size();
    float* out = all_logits ? logits + done * c.n_output() : (last ? logits : nullptr);
    const int p = pos + static_cast<int>(done);
    if (model_.moe.is_moe() && !layer_router_)
      RME_RETURN_IF_ERROR(route(tokens.subspan(done, n), p, kv.router(), kv.n_ctx(),
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
  const bool routed_ahead = moe && !layer_router_;
  if (routed_ahead && router_ && !router_->batchable())
    return invalid_argument(
        "forward: this router holds one sequence's state; it cannot run batched");
  const int k = route_k();
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
  const size_t need = static_cast<size_t>(pool_.n_threads()) * max_pos *
                      (model_.config.n_head / std::max(1, model_.config.n_head_kv));
  if (scratch_.size() < need) scratch_.resize(need);
  run_tokens(batch_tokens_.data(), n, logit_rows_.empty() ? nullptr : logits);
  return Status::Ok();
}

Status Forward::route_tokens(std::span<const int> tokens, int pos, KvCache* router_kv, int* experts,
                             float* weights) {
  if (!model_.moe.is_moe()) return invalid_argument("routing: the model is dense (no experts)");
  if (layer_router_)
    return invalid_argument("routing: a layer router needs the backbone's activations");
  for (int t : tokens)
    if (t < 0 || t >= model_.config.n_vocab)
      return invalid_argument("routing: token id " + std::to_string(t) + " out of range");
  const int n_ctx = router_kv ? router_kv->n_ctx() : 0;
  if (router_kv != nullptr && (pos < 0 || pos + static_cast<int64_t>(tokens.size()) > n_ctx))
    return invalid_argument("routing: positions beyond the router cache");
  return route(tokens, pos, router_kv, n_ctx, experts, weights);
}

// Fills experts/weights [n_tok, k] for a chunk through the token router.
Status Forward::route(std::span<const int> tokens, int pos, KvCache* router_kv, int n_ctx,
                      int* experts, float* weights) {
  if (!router_)
    return invalid_argument(model_.source +
                            ": the MoE has no router yet (run `rme train-router`, or pick "
                            "--routing oracle|random|expert:N)");
  RME_RETURN_IF_ERROR(router_->route(tokens, pos, router_kv, n_ctx, experts, weights));
  if (observer_) observer_(-1, pos, static_cast<int>(tokens.size()), router_->k(), experts);
  return Status::Ok();
}

// Adds each token's routed expert outputs to x_. Tokens are grouped by expert so each expert's
// weights are read once per chunk, whatever the number of tokens that chose it.
void Forward::expert_ffn(const LayerWeights& L, int layer, int n_tok) {
  const int64_t D = model_.config.n_embd;
  const int k = route_k();
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
  const int64_t scratch_len = static_cast<int64_t>(max_pos) * group;

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
    // (the last sliding_window of them when the model has a window); the query heads sharing a
    // K/V head run as one group, which reads the cache once for them.
    const int64_t HKV = c.n_head_kv;
    pool_.parallel_for(n_tok * HKV, 1, [&](int64_t b, int64_t e, int thread) {
      float* scratch = scratch_.data() + thread * scratch_len;
      for (int64_t i = b; i < e; ++i) {
        const int64_t t = i / HKV, hk = i % HKV, off = hk * Dh;
        const KvView& kv = views_[view_[t]];
        const int64_t base = il * kv.layer_stride + off;
        const int64_t first =
            c.sliding_window > 0 ? std::max<int64_t>(0, pos_[t] + 1 - c.sliding_window) : 0;
        const int64_t q0 = t * QD + hk * group * Dh;
        attention_group_paged(kernels_.isa, &q_[q0], group, kv.k + base, kv.v + base, kv.blocks,
                              kv.block_size, kv.block_stride, kv.stride, first, pos_[t] + 1, Dh,
                              scratch, &att_[q0]);
      }
    });
    matmul(kernels_, L.wo, att_.data(), QD, n_tok, xb_.data(), D, pool_);  // [T, D]
    for (int64_t i = 0; i < n_tok * D; ++i) x_[i] += xb_[i];

    for (int t = 0; t < n_tok; ++t) rmsnorm(&x_[t * D], L.ffn_norm, D, c.rms_eps, &xb_[t * D]);
    if (input_probe_) input_probe_(il, n_tok, xb_.data(), D);
    if (moe && layer_router_) {
      layer_router_->route(il, xb_.data(), n_tok, route_expert_.data(), route_weight_.data());
      if (observer_) observer_(il, pos_[0], n_tok, layer_router_->k(), route_expert_.data());
    }
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
