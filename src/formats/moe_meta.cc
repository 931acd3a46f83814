// formats: MoE layout (de)serialization and expert binding.
#include "formats/moe_meta.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "tensor/dtype.h"

namespace rme {

using json = nlohmann::json;

std::string moe_layout_json(const Model& m) {
  const MoeConfig& moe = m.moe;
  json j = {{"n_expert", moe.n_expert},
            {"top_k", moe.top_k},
            {"parent_n_ff", moe.parent_n_ff},
            {"parent", moe.parent},
            {"expert_names", moe.expert_names},
            {"has_layer_gate", moe.has_layer_gate},
            {"shared_channels", moe.shared_channels},
            {"expert_channels", moe.expert_channels}};
  if (m.router) {
    const LlamaConfig& r = m.router->config;
    j["router"] = {
        {"n_embd", r.n_embd},       {"n_layer", r.n_layer}, {"n_head", r.n_head},
        {"n_head_kv", r.n_head_kv}, {"n_ff", r.n_ff},       {"n_ctx", r.n_ctx},
        {"head_dim", r.head_dim},   {"rms_eps", r.rms_eps}, {"rope_theta", r.rope_theta}};
  }
  return j.dump();
}

Status apply_moe_layout(const std::string& text, const std::string& path, Model& m) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return corrupt(path + ": MoE layout is not a JSON object");
  MoeConfig& moe = m.moe;
  try {
    moe.n_expert = j.at("n_expert").get<int>();
    moe.top_k = j.value("top_k", 1);
    moe.parent_n_ff = j.at("parent_n_ff").get<int>();
    moe.parent = j.value("parent", "");
    moe.expert_names = j.value("expert_names", std::vector<std::string>{});
    moe.has_layer_gate = j.value("has_layer_gate", false);
    moe.shared_channels = j.at("shared_channels").get<std::vector<std::vector<int>>>();
    moe.expert_channels = j.at("expert_channels").get<std::vector<std::vector<std::vector<int>>>>();
    if (j.contains("router") && j["router"].is_object()) {
      const json& r = j["router"];
      auto router = std::make_shared<Model>();
      LlamaConfig& c = router->config;
      c.n_vocab = m.config.n_vocab;
      c.n_out = moe.n_expert;
      c.n_embd = r.at("n_embd").get<int>();
      c.n_layer = r.at("n_layer").get<int>();
      c.n_head = r.at("n_head").get<int>();
      c.n_head_kv = r.value("n_head_kv", c.n_head);
      c.n_ff = r.at("n_ff").get<int>();
      c.n_ctx = r.value("n_ctx", m.config.n_ctx);
      c.head_dim = r.value("head_dim", c.n_head > 0 ? c.n_embd / c.n_head : 0);
      c.rms_eps = r.value("rms_eps", 1e-5f);
      c.rope_theta = r.value("rope_theta", 10000.0f);
      c.rope_style = m.config.rope_style;
      RME_RETURN_IF_ERROR(c.validate().with_context(path + ": router"));
      router->source = path;
      router->format = m.format;
      m.router = std::move(router);
    }
  } catch (const std::exception& e) {
    return corrupt(path + ": MoE layout: " + e.what());
  }
  if (static_cast<int>(moe.shared_channels.size()) != m.config.n_layer)
    return corrupt(path + ": MoE layout has shared channels for " +
                   std::to_string(moe.shared_channels.size()) + " layers, model has " +
                   std::to_string(m.config.n_layer));
  RME_RETURN_IF_ERROR(moe.validate(m.config.n_layer).with_context(path));
  m.config.n_ff_layer.clear();
  for (const auto& s : moe.shared_channels)
    m.config.n_ff_layer.push_back(static_cast<int>(s.size()));
  return Status::Ok();
}

Status bind_moe(Model& m, const TensorLookup& lookup, NameScheme scheme, const std::string& path) {
  RME_RETURN_IF_ERROR(bind_moe_weights(m, lookup, scheme, path));
  if (!m.router) return Status::Ok();
  auto prefixed = [&](const std::string& name) { return lookup("router." + name); };
  RME_RETURN_IF_ERROR(bind_weights(*m.router, prefixed, scheme, path + " (router)"));
  if (m.router->config.tied_output)
    return corrupt(path + ": router.* output weight is missing (routers have their own head)");
  m.router->files = m.files;
  return Status::Ok();
}

Result<std::vector<ExpertRange>> expert_ranges(const Model& m) {
  std::vector<ExpertRange> out(m.moe.n_expert);
  if (m.moe.n_expert == 0) return out;
  for (int e = 0; e < m.moe.n_expert; ++e) {
    const uint8_t* lo = nullptr;
    const uint8_t* hi = nullptr;
    uint64_t sum = 0;
    for (const LayerWeights& L : m.weights.layers) {
      const ExpertWeights& x = L.experts[e];
      for (const MatView* v : {&x.gate, &x.up, &x.down}) {
        const auto* p = static_cast<const uint8_t*>(v->data);
        const uint64_t n = static_cast<uint64_t>(v->n_out) * dtype_row_bytes(v->dtype, v->n_in);
        if (p == nullptr || n == 0) continue;
        lo = lo ? std::min(lo, p) : p;
        hi = hi ? std::max(hi, p + n) : p + n;
        sum += n;
      }
    }
    if (lo == nullptr) continue;  // an expert with no channels in any layer: nothing to load
    const MappedFile* file = nullptr;
    for (const auto& f : m.files)
      if (lo != nullptr && lo >= f->data() && hi <= f->data() + f->size()) file = f.get();
    if (file == nullptr)
      return invalid_argument(m.source + ": expert " + std::to_string(e) +
                              " is not stored in one mapped checkpoint file");
    out[e] = {static_cast<uint64_t>(lo - file->data()), static_cast<uint64_t>(hi - lo), sum, file};
  }
  return out;
}

}  // namespace rme
