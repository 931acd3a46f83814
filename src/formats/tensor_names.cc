// formats: GGUF and Hugging Face tensor names for Llama.
#include "formats/tensor_names.h"

namespace rme {

std::string tensor_name(const WeightId& id, NameScheme scheme) {
  using K = WeightId::Kind;
  if (id.router) {  // the router is a small Llama of its own, stored under a prefix
    WeightId plain = id;
    plain.router = false;
    return "router." + tensor_name(plain, scheme);
  }
  const bool gguf = scheme == NameScheme::kGguf;
  const std::string blk = gguf ? "blk." + std::to_string(id.layer) + "."
                               : "model.layers." + std::to_string(id.layer) + ".";
  switch (id.kind) {
    case K::kTokEmbd:
      return gguf ? "token_embd.weight" : "model.embed_tokens.weight";
    case K::kOutNorm:
      return gguf ? "output_norm.weight" : "model.norm.weight";
    case K::kOutput:
      return gguf ? "output.weight" : "lm_head.weight";
    case K::kAttnNorm:
      return blk + (gguf ? "attn_norm.weight" : "input_layernorm.weight");
    case K::kWq:
      return blk + (gguf ? "attn_q.weight" : "self_attn.q_proj.weight");
    case K::kWk:
      return blk + (gguf ? "attn_k.weight" : "self_attn.k_proj.weight");
    case K::kWv:
      return blk + (gguf ? "attn_v.weight" : "self_attn.v_proj.weight");
    case K::kWo:
      return blk + (gguf ? "attn_output.weight" : "self_attn.o_proj.weight");
    case K::kBq:
      return blk + (gguf ? "attn_q.bias" : "self_attn.q_proj.bias");
    case K::kBk:
      return blk + (gguf ? "attn_k.bias" : "self_attn.k_proj.bias");
    case K::kBv:
      return blk + (gguf ? "attn_v.bias" : "self_attn.v_proj.bias");
    case K::kFfnNorm:
      return blk + (gguf ? "ffn_norm.weight" : "post_attention_layernorm.weight");
    case K::kGate:
      return blk + (gguf ? "ffn_gate.weight" : "mlp.gate_proj.weight");
    case K::kUp:
      return blk + (gguf ? "ffn_up.weight" : "mlp.up_proj.weight");
    case K::kDown:
      return blk + (gguf ? "ffn_down.weight" : "mlp.down_proj.weight");
    case K::kExpGate:
    case K::kExpUp:
    case K::kExpDown: {
      const char* part = id.kind == K::kExpGate ? (gguf ? "gate" : "gate_proj")
                         : id.kind == K::kExpUp ? (gguf ? "up" : "up_proj")
                                                : (gguf ? "down" : "down_proj");
      const std::string e = std::to_string(id.expert);
      return gguf ? blk + "ffn_" + part + "_exp." + e + ".weight"
                  : blk + "mlp.experts." + e + "." + part + ".weight";
    }
    case K::kLayerGate:
      return blk + (gguf ? "ffn_gate_inp.weight" : "mlp.gate.weight");
  }
  return "";
}

std::vector<WeightId> all_weight_ids(int n_layer, bool include_output, bool attn_bias) {
  using K = WeightId::Kind;
  std::vector<WeightId> ids = {{K::kTokEmbd, -1}};
  for (int il = 0; il < n_layer; ++il) {
    for (K k :
         {K::kAttnNorm, K::kWq, K::kWk, K::kWv, K::kWo, K::kFfnNorm, K::kGate, K::kUp, K::kDown})
      ids.push_back({k, il});
    if (attn_bias)
      for (K k : {K::kBq, K::kBk, K::kBv}) ids.push_back({k, il});
  }
  ids.push_back({K::kOutNorm, -1});
  if (include_output) ids.push_back({K::kOutput, -1});
  return ids;
}

std::vector<int64_t> expected_shape(const WeightId& id, const LlamaConfig& c) {
  using K = WeightId::Kind;
  switch (id.kind) {
    case K::kTokEmbd:
      return {c.n_vocab, c.n_embd};
    case K::kOutput:
      return {c.n_output(), c.n_embd};
    case K::kOutNorm:
    case K::kAttnNorm:
    case K::kFfnNorm:
      return {c.n_embd};
    case K::kWq:
      return {c.q_dim(), c.n_embd};
    case K::kWk:
    case K::kWv:
      return {c.kv_dim(), c.n_embd};
    case K::kWo:
      return {c.n_embd, c.q_dim()};
    case K::kBq:
      return {c.q_dim()};
    case K::kBk:
    case K::kBv:
      return {c.kv_dim()};
    case K::kGate:
    case K::kUp:
      return {c.ffn_width(id.layer), c.n_embd};
    case K::kDown:
      return {c.n_embd, c.ffn_width(id.layer)};
    case K::kExpGate:  // widths come from the MoE layout; bind checks them
    case K::kExpUp:
    case K::kExpDown:
    case K::kLayerGate:
      break;
  }
  return {};
}

bool is_vector(const WeightId& id) {
  using K = WeightId::Kind;
  return id.kind == K::kOutNorm || id.kind == K::kAttnNorm || id.kind == K::kFfnNorm ||
         id.kind == K::kBq || id.kind == K::kBk || id.kind == K::kBv;
}

}  // namespace rme
