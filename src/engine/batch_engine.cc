// engine: BatchEngine — admission into a RequestTable, execution of its chunks, sampling and
// routing of new tokens.
#include "engine/batch_engine.h"

#include <algorithm>

#include "core/check.h"
#include "model/weights.h"

namespace rme {

namespace {
BatchEngineOptions resolve(const Model& m, BatchEngineOptions o) {
  if (o.max_seq_len <= 0) o.max_seq_len = m.config.n_ctx;
  o.block_size = std::max(1, o.block_size);
  if (o.n_block <= 0) o.n_block = 8 * ((o.max_seq_len + o.block_size - 1) / o.block_size);
  o.max_step_tokens = std::max(1, o.max_step_tokens);
  return o;
}
}  // namespace

BatchEngine::BatchEngine(const Model& model, ThreadPool& pool, const BatchEngineOptions& options)
    : model_(model),
      options_(resolve(model, options)),
      kv_(model.config, options_.n_block, options_.block_size),
      forward_(model, options_.max_step_tokens, pool, options_.kernels) {}

BatchEngine::~BatchEngine() = default;

RequestTable BatchEngine::make_table() const {
  return RequestTable(kv_.n_block(), kv_.block_size(),
                      model_.moe.is_moe() ? forward_.route_k() : 0);
}

Status BatchEngine::validate(const RequestParams& r) const {
  RME_RETURN_IF_ERROR(r.sampling.validate());
  const int n = static_cast<int>(r.prompt.size());
  if (n == 0) return invalid_argument("request: empty prompt");
  if (r.max_new < 1) return invalid_argument("request: max_tokens must be >= 1");
  const int64_t total = static_cast<int64_t>(n) + r.max_new;
  if (total > options_.max_seq_len)
    return invalid_argument("request: prompt (" + std::to_string(n) + ") + max_tokens (" +
                            std::to_string(r.max_new) + ") exceeds the context of " +
                            std::to_string(options_.max_seq_len));
  if (blocks_needed(static_cast<int>(total), kv_.block_size(), 0) > kv_.n_block())
    return invalid_argument("request: longer than the whole KV cache");
  if (r.logprobs > kMaxTopLogprobs)
    return invalid_argument("request: at most " + std::to_string(kMaxTopLogprobs) +
                            " top log-probabilities");
  for (const auto& [id, bias] : r.sampling.logit_bias)
    if (id >= model_.config.n_vocab)
      return invalid_argument("request: logit_bias token id " + std::to_string(id) +
                              " outside [0, " + std::to_string(model_.config.n_vocab) + ")");
  for (int t : r.prompt)
    if (t < 0 || t >= model_.config.n_vocab)
      return invalid_argument("request: token id " + std::to_string(t) + " outside [0, " +
                              std::to_string(model_.config.n_vocab) + ")");
  return Status::Ok();
}

Result<int64_t> BatchEngine::admit(const RequestParams& r, int64_t arrival, int64_t step,
                                   RequestTable* table) {
  RME_RETURN_IF_ERROR(validate(r));
  const int n = static_cast<int>(r.prompt.size());
  const int64_t total = static_cast<int64_t>(n) + r.max_new;
  if (table->route_k() != (model_.moe.is_moe() ? forward_.route_k() : 0))
    return internal_error("engine: the request table routes another k than the engine");
  NewRequest q;
  q.prompt = r.prompt;
  q.stop = {r.max_new, r.ignore_eos, r.stop_ids, r.watch};
  q.arrival = arrival;
  PerRequest p;
  p.sampler = std::make_unique<Sampler>(r.sampling);
  p.logprobs = r.logprobs;
  if (const int k = table->route_k(); k > 0) {
    if (model_.router) p.router_kv = std::make_unique<KvCache>(model_.router->config, total);
    q.experts.resize(static_cast<size_t>(n) * k);
    q.weights.resize(q.experts.size());
    RME_RETURN_IF_ERROR(
        forward_.route_tokens(r.prompt, 0, p.router_kv.get(), q.experts.data(), q.weights.data()));
  }
  const int64_t id = table->add(std::move(q), step);
  per_request_[id] = std::move(p);
  return id;
}

Status BatchEngine::execute(const RequestTable& table, std::span<const StepChunk> chunks,
                            std::vector<const ExpertWeights*> expert_table,
                            std::vector<TokenEvent>* events) {
  std::erase_if(per_request_, [&](const auto& kv) { return table.find(kv.first) == nullptr; });
  const int k = table.route_k();
  chunks_.clear();
  std::vector<const Request*> run;
  int total = 0;
  for (const StepChunk& c : chunks) {
    const Request* r = table.find(c.id);
    if (!r || !per_request_.count(c.id))
      return internal_error("engine: a chunk of request " + std::to_string(c.id) +
                            " the engine did not admit");
    total += c.n_tokens;
    if (total > forward_.max_tokens()) return internal_error("engine: plan exceeds the step");
    SeqChunk ch;
    ch.tokens = std::span<const int>(r->tokens).subspan(c.pos, c.n_tokens);
    ch.pos = c.pos;
    ch.kv = kv_.view(r->blocks);
    ch.want_logits = c.want_logits;
    if (k > 0) {
      ch.experts =
          std::span<const int>(r->experts).subspan(size_t(c.pos) * k, size_t(c.n_tokens) * k);
      ch.weights =
          std::span<const float>(r->weights).subspan(size_t(c.pos) * k, size_t(c.n_tokens) * k);
    }
    chunks_.push_back(ch);
    run.push_back(r);
  }
  if (chunks_.empty()) return Status::Ok();
  size_t n_logits = 0;
  for (const auto& c : chunks_) n_logits += c.want_logits;
  const int V = model_.config.n_output();
  if (logits_.size() < n_logits * V) logits_.resize(n_logits * V);
  forward_.set_expert_table(std::move(expert_table));
  Status st = forward_.run_batch(chunks_, logits_.data());
  forward_.set_expert_table({});
  if (!st.ok()) return st;

  size_t row = 0;
  for (size_t i = 0; i < chunks_.size(); ++i) {
    if (!chunks_[i].want_logits) continue;
    const Request& r = *run[i];
    PerRequest& p = per_request_[r.id];
    float* lg = logits_.data() + row++ * V;
    const int n_vocab = model_.config.n_vocab;
    TokenEvent ev;
    ev.id = r.id;
    ev.token = p.sampler->sample(lg, n_vocab, r.tokens, static_cast<size_t>(r.n_prompt));
    if (p.logprobs >= 0) ev.logprob = token_logprob(lg, n_vocab, ev.token, p.logprobs, &ev.top);
    if (k > 0 && r.stop.check(ev.token, r.n_generated() + 1) == FinishReason::kNone) {
      ev.experts.resize(k);
      ev.weights.resize(k);
      const int pos = static_cast<int>(r.tokens.size());
      const int tok[1] = {ev.token};
      Status rs =
          forward_.route_tokens(tok, pos, p.router_kv.get(), ev.experts.data(), ev.weights.data());
      if (!rs.ok()) {
        ev.token = -1;
        ev.finish = FinishReason::kError;
        ev.error = Status(rs.code(), "routing the sampled token: " + rs.message());
      }
    }
    events->push_back(std::move(ev));
  }
  return Status::Ok();
}

}  // namespace rme
