// model: dense Llama forward (RMSNorm -> GQA attention with RoPE -> RMSNorm -> SwiGLU).
#include "model/forward.h"

#include <algorithm>

#include "kernels/ops.h"
#include "tensor/quant.h"

namespace rme {

Forward::Forward(const Model& model, int max_tokens, ThreadPool& pool)
    : model_(model), pool_(pool), max_tokens_(std::max(1, max_tokens)) {
  const LlamaConfig& c = model.config;
  const size_t t = static_cast<size_t>(max_tokens_);
  inv_freq_ = c.rope_inv_freq();
  x_.resize(t * c.n_embd);
  xb_.resize(t * std::max(c.n_embd, c.q_dim()));
  q_.resize(t * c.q_dim());
  k_.resize(t * c.kv_dim());
  v_.resize(t * c.kv_dim());
  att_.resize(t * c.q_dim());
  gate_.resize(t * c.n_ff);
  up_.resize(t * c.n_ff);
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
  size_t done = 0;
  while (done < tokens.size()) {
    int n = static_cast<int>(std::min<size_t>(max_tokens_, tokens.size() - done));
    bool last = done + n == tokens.size();
    float* out = all_logits ? logits + done * c.n_vocab : (last ? logits : nullptr);
    run_chunk(tokens.data() + done, n, pos + static_cast<int>(done), kv, out, all_logits);
    done += n;
  }
  return Status::Ok();
}

void Forward::run_chunk(const int* tokens, int n_tok, int pos, KvCache& kv, float* logits,
                        bool all_logits) {
  const LlamaConfig& c = model_.config;
  const ModelWeights& w = model_.weights;
  const int64_t D = c.n_embd, Dh = c.head_dim, QD = c.q_dim(), KVD = c.kv_dim(), F = c.n_ff;
  const int64_t H = c.n_head, group = c.n_head / c.n_head_kv;
  const size_t emb_row = dtype_row_bytes(w.tok_embd.dtype, D);

  for (int t = 0; t < n_tok; ++t)  // x[T, D] = embedding rows
    dequantize_row(w.tok_embd.dtype,
                   static_cast<const uint8_t*>(w.tok_embd.data) + emb_row * tokens[t], &x_[t * D],
                   D);

  for (int il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = w.layers[il];
    for (int t = 0; t < n_tok; ++t) rmsnorm(&x_[t * D], L.attn_norm, D, c.rms_eps, &xb_[t * D]);
    matmul(L.wq, xb_.data(), D, n_tok, q_.data(), QD, pool_);   // q[T, H*Dh]
    matmul(L.wk, xb_.data(), D, n_tok, k_.data(), KVD, pool_);  // k[T, Hkv*Dh]
    matmul(L.wv, xb_.data(), D, n_tok, v_.data(), KVD, pool_);  // v[T, Hkv*Dh]
    for (int t = 0; t < n_tok; ++t) {
      rope(&q_[t * QD], H, Dh, pos + t, inv_freq_.data(), c.rope_style);
      rope(&k_[t * KVD], c.n_head_kv, Dh, pos + t, inv_freq_.data(), c.rope_style);
      std::copy_n(&k_[t * KVD], KVD, kv.k(il, pos + t));
      std::copy_n(&v_[t * KVD], KVD, kv.v(il, pos + t));
    }
    // att[T, H*Dh]: each (token, head) attends causally over positions 0..pos+t.
    const float* kbase = kv.k(il, 0);
    const float* vbase = kv.v(il, 0);
    const int64_t stride = kv.stride();
    const int64_t n_ctx = kv.n_ctx();
    pool_.parallel_for(n_tok * H, 1, [&](int64_t b, int64_t e, int thread) {
      float* scratch = scratch_.data() + thread * n_ctx;
      for (int64_t i = b; i < e; ++i) {
        const int64_t t = i / H, h = i % H, off = (h / group) * Dh;
        attention_head(&q_[t * QD + h * Dh], kbase + off, vbase + off, stride, pos + t + 1, Dh,
                       scratch, &att_[t * QD + h * Dh]);
      }
    });
    matmul(L.wo, att_.data(), QD, n_tok, xb_.data(), D, pool_);  // [T, D]
    for (int64_t i = 0; i < n_tok * D; ++i) x_[i] += xb_[i];

    for (int t = 0; t < n_tok; ++t) rmsnorm(&x_[t * D], L.ffn_norm, D, c.rms_eps, &xb_[t * D]);
    matmul(L.w_gate, xb_.data(), D, n_tok, gate_.data(), F, pool_);  // [T, F]
    matmul(L.w_up, xb_.data(), D, n_tok, up_.data(), F, pool_);      // [T, F]
    silu_mul(gate_.data(), up_.data(), n_tok * F);
    matmul(L.w_down, gate_.data(), F, n_tok, xb_.data(), D, pool_);  // [T, D]
    for (int64_t i = 0; i < n_tok * D; ++i) x_[i] += xb_[i];
  }
  if (logits == nullptr) return;
  const int first = all_logits ? 0 : n_tok - 1;
  for (int t = first; t < n_tok; ++t) rmsnorm(&x_[t * D], w.out_norm, D, c.rms_eps, &xb_[t * D]);
  matmul(w.output, &xb_[first * D], D, n_tok - first, logits, c.n_vocab, pool_);  // [T, V]
}

}  // namespace rme
