// model: LlamaConfig validation and derived quantities.
#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace rme {

Status LlamaConfig::validate() const {
  auto bad = [](const std::string& m) { return invalid_argument("config: " + m); };
  // Bounds keep a corrupted header from asking for absurd allocations.
  if (n_vocab <= 0 || n_vocab > (1 << 22))
    return bad("n_vocab " + std::to_string(n_vocab) + " outside 1..4194304");
  if (n_embd <= 0 || n_embd > 65536)
    return bad("n_embd " + std::to_string(n_embd) + " outside 1..65536");
  if (n_layer <= 0 || n_layer > 1024)
    return bad("n_layer " + std::to_string(n_layer) + " outside 1..1024");
  if (n_head <= 0 || n_head > 1024)
    return bad("n_head " + std::to_string(n_head) + " outside 1..1024");
  if (n_head_kv <= 0 || n_head_kv > n_head || n_head % n_head_kv != 0)
    return bad("n_head_kv " + std::to_string(n_head_kv) + " must divide n_head " +
               std::to_string(n_head));
  if (n_ff <= 0 || n_ff > (1 << 20))
    return bad("n_ff " + std::to_string(n_ff) + " outside 1..1048576");
  if (n_ctx <= 0 || n_ctx > (1 << 24))
    return bad("n_ctx " + std::to_string(n_ctx) + " outside 1..16777216");
  if (head_dim <= 0 || head_dim % 2 != 0 || head_dim > 4096)
    return bad("head_dim " + std::to_string(head_dim) + " must be even and <= 4096");
  if (!n_ff_layer.empty() && static_cast<int>(n_ff_layer.size()) != n_layer)
    return bad("n_ff_layer has " + std::to_string(n_ff_layer.size()) + " entries, n_layer is " +
               std::to_string(n_layer));
  for (int w : n_ff_layer)
    if (w < 0 || w > (1 << 20)) return bad("a per-layer FFN width is outside 0..1048576");
  if (n_out < 0 || n_out > (1 << 22)) return bad("n_out outside 0..4194304");
  if (!(rms_eps > 0) || !(rms_eps < 1)) return bad("rms_eps must be in (0, 1)");
  if (!(rope_theta > 0)) return bad("rope_theta must be positive");
  if (!rope_freq_factors.empty() && static_cast<int>(rope_freq_factors.size()) != head_dim / 2)
    return bad("rope_freq_factors has " + std::to_string(rope_freq_factors.size()) +
               " entries, head_dim/2 is " + std::to_string(head_dim / 2));
  for (float f : rope_freq_factors)
    if (!(f > 0) || !std::isfinite(f))
      return bad("rope_freq_factors must be positive and finite (a zero factor divides by zero)");
  const RopeScaling& s = rope_scaling;
  if (s.type != RopeScaling::Type::kNone && (!(s.factor > 0) || !std::isfinite(s.factor)))
    return bad("rope_scaling.factor must be positive and finite");
  if (s.type == RopeScaling::Type::kLlama3 &&
      (!(s.low_freq_factor > 0) || !(s.high_freq_factor > s.low_freq_factor) ||
       !std::isfinite(s.high_freq_factor) || s.original_max_position <= 0))
    return bad(
        "llama3 rope_scaling needs 0 < low_freq_factor < high_freq_factor and a positive "
        "original_max_position_embeddings");
  if (!std::isfinite(rope_theta)) return bad("rope_theta must be finite");
  return Status::Ok();
}

std::vector<float> LlamaConfig::rope_inv_freq() const {
  const int half = head_dim / 2;
  std::vector<float> f(half);
  for (int i = 0; i < half; ++i) {
    // float32 like llama2.c and HF: 1 / theta^(2i/Dh)
    f[i] = 1.0f / std::pow(rope_theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
  }
  const RopeScaling& s = rope_scaling;
  if (s.type == RopeScaling::Type::kLinear) {
    for (float& v : f) v /= s.factor;
  } else if (s.type == RopeScaling::Type::kLlama3) {
    // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, a smooth blend between.
    const float pi = 3.14159265358979f;
    const float low_wavelen = s.original_max_position / s.low_freq_factor;
    const float high_wavelen = s.original_max_position / s.high_freq_factor;
    for (float& v : f) {
      float wavelen = 2 * pi / v;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        v /= s.factor;
      } else {
        float smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                       (s.high_freq_factor - s.low_freq_factor);
        v = (1 - smooth) * v / s.factor + smooth * v;
      }
    }
  }
  if (!rope_freq_factors.empty())
    for (int i = 0; i < half; ++i) f[i] /= rope_freq_factors[i];
  return f;
}

int LlamaConfig::max_ffn_width() const {
  int m = n_ff;
  for (int w : n_ff_layer) m = std::max(m, w);
  return m;
}

int64_t LlamaConfig::n_params() const {
  int64_t d = n_embd, per_layer = 0;
  per_layer += 2 * d;                                         // norms
  per_layer += d * q_dim() + 2 * d * kv_dim() + q_dim() * d;  // attention
  int64_t total = per_layer * n_layer + d + static_cast<int64_t>(n_vocab) * d;
  for (int l = 0; l < n_layer; ++l) total += 3 * d * ffn_width(l);  // SwiGLU
  if (!tied_output) total += static_cast<int64_t>(n_output()) * d;
  return total;
}

std::string LlamaConfig::summary() const {
  std::ostringstream s;
  s << (attn_bias ? "qwen2 (q/k/v biases)" : "llama") << ": n_vocab=" << n_vocab
    << " n_embd=" << n_embd << " n_layer=" << n_layer << " n_head=" << n_head
    << " n_head_kv=" << n_head_kv << " head_dim=" << head_dim << " n_ff=" << n_ff
    << " n_ctx=" << n_ctx << " rope_theta=" << rope_theta
    << " rope=" << (rope_style == RopeStyle::kHalf ? "half" : "interleaved")
    << " rms_eps=" << rms_eps << " tied_output=" << (tied_output ? "yes" : "no");
  if (rope_scaling.type == RopeScaling::Type::kLlama3)
    s << " rope_scaling=llama3(factor=" << rope_scaling.factor << ")";
  if (rope_scaling.type == RopeScaling::Type::kLinear)
    s << " rope_scaling=linear(factor=" << rope_scaling.factor << ")";
  return s.str();
}

}  // namespace rme
