// train: TrainConfig parsing and the learning-rate schedule.
#include "train/train_config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/file.h"

namespace rme {

double cosine_lr(int step, int steps, int warmup, double lr, double min_lr) {
  if (step < warmup) return lr * (step + 1) / warmup;
  const double p = std::min(1.0, double(step - warmup) / std::max(1, steps - warmup));
  return min_lr + 0.5 * (lr - min_lr) * (1 + std::cos(M_PI * p));
}

double TrainConfig::lr_at(int step) const {
  return cosine_lr(step, steps, warmup_steps, lr, min_lr);
}

Result<TrainConfig> read_train_config(const std::string& path) {
  RME_ASSIGN_OR_RETURN(std::string text, read_file(path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return corrupt(path + ": not a JSON object");
  TrainConfig c;
  try {
    const auto& m = j.at("model");
    LlamaConfig& lc = c.model;
    lc.n_embd = m.at("n_embd").get<int>();
    lc.n_layer = m.at("n_layer").get<int>();
    lc.n_head = m.at("n_head").get<int>();
    lc.n_head_kv = m.value("n_head_kv", lc.n_head);
    lc.n_ff = m.at("n_ff").get<int>();
    lc.n_ctx = m.value("n_ctx", 512);
    lc.head_dim = lc.n_head > 0 ? lc.n_embd / lc.n_head : 0;
    lc.rope_theta = m.value("rope_theta", 10000.0f);
    lc.rms_eps = m.value("rms_eps", 1e-5f);
    lc.tied_output = m.value("tied_output", true);
    lc.rope_style = RopeStyle::kHalf;  // exported as a Hugging Face directory
    c.seq_len = j.value("seq_len", c.seq_len);
    c.batch_size = j.value("batch_size", c.batch_size);
    c.grad_accum = j.value("grad_accum", c.grad_accum);
    c.steps = j.value("steps", c.steps);
    c.warmup_steps = j.value("warmup_steps", c.warmup_steps);
    c.lr = j.value("lr", c.lr);
    c.min_lr = j.value("min_lr", c.min_lr);
    c.weight_decay = j.value("weight_decay", c.weight_decay);
    c.beta1 = j.value("beta1", c.beta1);
    c.beta2 = j.value("beta2", c.beta2);
    c.grad_clip = j.value("grad_clip", c.grad_clip);
    c.eval_every = j.value("eval_every", c.eval_every);
    c.eval_tokens = j.value("eval_tokens", c.eval_tokens);
    c.checkpoint_every = j.value("checkpoint_every", c.checkpoint_every);
    c.seed = j.value("seed", c.seed);
    c.threads = j.value("threads", c.threads);
    if (j.contains("mixture")) c.mixture = j["mixture"].get<std::map<std::string, double>>();
  } catch (const std::exception& e) {
    return corrupt(path + ": " + e.what());
  }
  auto bad = [&](const std::string& m) { return invalid_argument(path + ": " + m); };
  if (c.seq_len < 2 || c.seq_len > c.model.n_ctx) return bad("seq_len must be in [2, model.n_ctx]");
  if (c.batch_size < 1 || c.grad_accum < 1 || c.steps < 1)
    return bad("batch_size, grad_accum, steps must be >= 1");
  if (c.warmup_steps < 1 || c.warmup_steps > c.steps)
    return bad("warmup_steps must be in [1, steps]");
  if (!(c.lr > 0) || !(c.min_lr >= 0) || c.min_lr > c.lr)
    return bad("need 0 <= min_lr <= lr, lr > 0");
  if (c.eval_every < 1 || c.checkpoint_every < 1)
    return bad("eval_every and checkpoint_every must be >= 1");
  for (const auto& [d, w] : c.mixture)
    if (!(w >= 0)) return bad("mixture weight of '" + d + "' is negative");
  c.source_json = j.dump();
  return c;
}

}  // namespace rme
