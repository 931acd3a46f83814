// formats: MoE layout (de)serialization and expert binding.
#include "formats/moe_meta.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/json.h"
#include "tensor/dtype.h"

namespace rme {

using json = nlohmann::json;

namespace {

namespace fs = std::filesystem;

std::string parent_relative_to(const std::string& parent, const std::string& out_path) {
  std::error_code ec;
  if (parent.empty() || !fs::exists(parent, ec)) return parent;  // informational only
  const fs::path from = fs::absolute(fs::path(out_path), ec).parent_path();
  const fs::path rel = fs::absolute(parent, ec).lexically_normal().lexically_relative(from);
  return rel.empty() ? parent : rel.string();
}

std::string resolve_parent(const std::string& parent, const std::string& layout_path) {
  if (parent.empty() || fs::path(parent).is_absolute()) return parent;
  std::error_code ec;
  const fs::path beside = (fs::path(layout_path).parent_path() / parent).lexically_normal();
  if (fs::exists(beside, ec) || !fs::exists(parent, ec)) return beside.string();
  return parent;
}

}  // namespace

std::string moe_layout_json(const Model& m, const std::string& out_path) {
  const MoeConfig& moe = m.moe;
  json j = {{"n_expert", moe.n_expert},
            {"top_k", moe.top_k},
            {"parent_n_ff", moe.parent_n_ff},
            {"parent", parent_relative_to(moe.parent, out_path)},
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

namespace {

// [n][...] nested integer lists, every element in [0, hi).
Status int_lists(const JsonFields& f, const json& lists, const std::string& key, int64_t hi,
                 std::vector<std::vector<int>>* out) {
  if (!lists.is_array()) return f.error(key.c_str(), "an array of channel lists");
  out->clear();
  for (const json& list : lists) {
    RME_ASSIGN_OR_RETURN(std::vector<int> v, f.int_array_value(list, key.c_str(), 0, hi - 1));
    out->push_back(std::move(v));
  }
  return Status::Ok();
}

}  // namespace

Status apply_moe_layout(const std::string& text, const std::string& path, Model& m) {
  RME_ASSIGN_OR_RETURN(json j, parse_json(text, path + ": MoE layout"));
  if (!j.is_object()) return corrupt(path + ": MoE layout is not a JSON object");
  const JsonFields f(j, path + ": MoE layout");
  MoeConfig& moe = m.moe;
  constexpr int64_t kMaxFf = 1 << 20;
  RME_ASSIGN_OR_RETURN(int64_t n_expert, f.required_integer("n_expert", 0, 1024));
  RME_ASSIGN_OR_RETURN(int64_t top_k, f.integer("top_k", 1, 1, 1024));
  RME_ASSIGN_OR_RETURN(int64_t parent_n_ff, f.required_integer("parent_n_ff", 1, kMaxFf));
  moe.n_expert = static_cast<int>(n_expert);
  moe.top_k = static_cast<int>(top_k);
  moe.parent_n_ff = static_cast<int>(parent_n_ff);
  RME_ASSIGN_OR_RETURN(moe.parent, f.string("parent", ""));
  moe.parent = resolve_parent(moe.parent, path);
  RME_ASSIGN_OR_RETURN(moe.expert_names, f.string_array("expert_names"));
  RME_ASSIGN_OR_RETURN(moe.has_layer_gate, f.boolean("has_layer_gate", false));
  if (!f.has("shared_channels") || !f.has("expert_channels"))
    return corrupt(path + ": MoE layout needs shared_channels and expert_channels");
  RME_RETURN_IF_ERROR(
      int_lists(f, j["shared_channels"], "shared_channels", parent_n_ff, &moe.shared_channels));
  const json& ec = j["expert_channels"];
  if (!ec.is_array()) return f.error("expert_channels", "an array per expert");
  moe.expert_channels.clear();
  for (size_t e = 0; e < ec.size(); ++e) {
    moe.expert_channels.emplace_back();
    RME_RETURN_IF_ERROR(int_lists(f, ec[e], "expert_channels[" + std::to_string(e) + "]",
                                  parent_n_ff, &moe.expert_channels.back()));
  }
  if (f.has("router")) {
    const json& r = j["router"];
    if (!r.is_object()) return f.error("router", "an object");
    const JsonFields rf(r, path + ": MoE layout router");
    auto router = std::make_shared<Model>();
    LlamaConfig& c = router->config;
    c.n_vocab = m.config.n_vocab;
    c.n_out = moe.n_expert;
    auto dim = [&](const char* key, int def, int& out) -> Status {
      RME_ASSIGN_OR_RETURN(int64_t v, def < 0 ? rf.required_integer(key, 1, 1 << 24)
                                              : rf.integer(key, def, 1, 1 << 24));
      out = static_cast<int>(v);
      return Status::Ok();
    };
    RME_RETURN_IF_ERROR(dim("n_embd", -1, c.n_embd));
    RME_RETURN_IF_ERROR(dim("n_layer", -1, c.n_layer));
    RME_RETURN_IF_ERROR(dim("n_head", -1, c.n_head));
    RME_RETURN_IF_ERROR(dim("n_head_kv", c.n_head, c.n_head_kv));
    RME_RETURN_IF_ERROR(dim("n_ff", -1, c.n_ff));
    RME_RETURN_IF_ERROR(dim("n_ctx", m.config.n_ctx, c.n_ctx));
    RME_RETURN_IF_ERROR(dim("head_dim", std::max(1, c.n_embd / c.n_head), c.head_dim));
    RME_ASSIGN_OR_RETURN(double eps, rf.number("rms_eps", 1e-5, 0, 1));
    RME_ASSIGN_OR_RETURN(double theta, rf.number("rope_theta", 10000.0, 0, 1e30));
    c.rms_eps = static_cast<float>(eps);
    c.rope_theta = static_cast<float>(theta);
    c.rope_style = m.config.rope_style;
    RME_RETURN_IF_ERROR(c.validate().with_context(path + ": router"));
    router->source = path;
    router->format = m.format;
    m.router = std::move(router);
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
