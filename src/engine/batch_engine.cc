// engine: BatchEngine — admission, plan execution, sampling and routing of new tokens.
#include "engine/batch_engine.h"

#include <algorithm>
#include <set>

#include "core/check.h"
#include "model/weights.h"

namespace rme {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "?";
}

struct BatchEngine::Seq {
  int64_t id = 0, arrival = 0, waiting_since = 0;
  std::vector<int> tokens;   // prompt then generated
  std::vector<int> experts;  // [tokens, k] routed experts, known for every token
  std::vector<float> weights;
  std::vector<int> blocks;
  int n_computed = 0, n_prompt = 0, max_new = 0, logprobs = -1;
  bool ignore_eos = false;
  std::vector<int> stop_ids;
  std::unique_ptr<KvCache> router_kv;
  std::unique_ptr<Sampler> sampler;
};

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
      max_seq_len_(options_.max_seq_len),
      kv_(model.config, options_.n_block, options_.block_size),
      forward_(model, options_.max_step_tokens, pool, options_.kernels) {
  for (int b = kv_.n_block() - 1; b >= 0; --b) free_.push_back(b);
}

BatchEngine::~BatchEngine() = default;

Result<int64_t> BatchEngine::add(const RequestParams& r, int64_t arrival, int64_t step) {
  RME_RETURN_IF_ERROR(r.sampling.validate());
  const int n = static_cast<int>(r.prompt.size());
  if (n == 0) return invalid_argument("request: empty prompt");
  if (r.max_new < 1) return invalid_argument("request: max_tokens must be >= 1");
  const int64_t total = static_cast<int64_t>(n) + r.max_new;
  if (total > max_seq_len_)
    return invalid_argument("request: prompt (" + std::to_string(n) + ") + max_tokens (" +
                            std::to_string(r.max_new) + ") exceeds the context of " +
                            std::to_string(max_seq_len_));
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
  auto s = std::make_unique<Seq>();
  s->id = next_id_++;
  s->arrival = arrival;
  s->waiting_since = step;
  s->tokens = r.prompt;
  s->n_prompt = n;
  s->max_new = r.max_new;
  s->ignore_eos = r.ignore_eos;
  s->stop_ids = r.stop_ids;
  s->logprobs = r.logprobs;
  s->sampler = std::make_unique<Sampler>(r.sampling);
  if (model_.moe.is_moe()) {
    const int k = forward_.route_k();
    if (model_.router) s->router_kv = std::make_unique<KvCache>(model_.router->config, total);
    s->experts.resize(static_cast<size_t>(n) * k);
    s->weights.resize(s->experts.size());
    RME_RETURN_IF_ERROR(forward_.route_tokens(r.prompt, 0, s->router_kv.get(), s->experts.data(),
                                              s->weights.data()));
  }
  const int64_t id = s->id;
  seqs_[id] = std::move(s);
  return id;
}

void BatchEngine::release(Seq& s) {
  for (int b : s.blocks) free_.push_back(b);
  s.blocks.clear();
  s.n_computed = 0;
}

void BatchEngine::cancel(int64_t id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  release(*it->second);
  seqs_.erase(it);
}

std::vector<SeqInfo> BatchEngine::seq_infos() const {
  std::vector<SeqInfo> out;
  out.reserve(seqs_.size());
  const int k = model_.moe.is_moe() ? forward_.route_k() : 0;
  for (const auto& [id, s] : seqs_) {
    SeqInfo i;
    i.id = id;
    i.arrival = s->arrival;
    i.n_computed = s->n_computed;
    i.n_known = static_cast<int>(s->tokens.size());
    i.n_blocks = static_cast<int>(s->blocks.size());
    i.waiting_since = s->waiting_since;
    for (int t = s->n_computed; t < i.n_known; ++t)
      i.pending_experts.push_back(k ? s->experts[static_cast<size_t>(t) * k] : -1);
    out.push_back(std::move(i));
  }
  return out;
}

std::vector<int> BatchEngine::plan_experts(const StepPlan& plan) const {
  std::set<int> e;
  if (!model_.moe.is_moe()) return {};
  const int k = forward_.route_k();
  for (const auto& c : plan.chunks) {
    auto it = seqs_.find(c.id);
    if (it == seqs_.end()) continue;
    const Seq& s = *it->second;
    for (int t = s.n_computed; t < s.n_computed + c.n_tokens; ++t)
      for (int j = 0; j < k; ++j) e.insert(s.experts[static_cast<size_t>(t) * k + j]);
  }
  return {e.begin(), e.end()};
}

Status BatchEngine::execute(const StepPlan& plan, int64_t step,
                            std::vector<const ExpertWeights*> expert_table,
                            std::vector<TokenEvent>* events) {
  for (int64_t id : plan.preempted) {
    auto it = seqs_.find(id);
    if (it != seqs_.end()) release(*it->second);  // recompute from scratch when rescheduled
  }
  const bool moe = model_.moe.is_moe();
  const int k = moe ? forward_.route_k() : 0;
  chunks_.clear();
  std::vector<Seq*> run;
  int total = 0;
  for (const auto& c : plan.chunks) {
    auto it = seqs_.find(c.id);
    if (it == seqs_.end()) continue;  // cancelled between schedule and execute
    Seq& s = *it->second;
    const int n = std::min(c.n_tokens, static_cast<int>(s.tokens.size()) - s.n_computed);
    if (n <= 0 || total + n > forward_.max_tokens())
      return internal_error("engine: plan exceeds the step or the request");
    const int need =
        blocks_needed(s.n_computed + n, kv_.block_size(), static_cast<int>(s.blocks.size()));
    if (need > free_blocks()) return internal_error("engine: plan needs more KV blocks than free");
    for (int b = 0; b < need; ++b) {
      s.blocks.push_back(free_.back());
      free_.pop_back();
    }
    SeqChunk ch;
    ch.tokens = std::span<const int>(s.tokens).subspan(s.n_computed, n);
    ch.pos = s.n_computed;
    ch.kv = kv_.view(s.blocks);
    ch.want_logits = s.n_computed + n == static_cast<int>(s.tokens.size());
    if (moe) {
      ch.experts = std::span<const int>(s.experts).subspan(size_t(s.n_computed) * k, size_t(n) * k);
      ch.weights =
          std::span<const float>(s.weights).subspan(size_t(s.n_computed) * k, size_t(n) * k);
    }
    chunks_.push_back(ch);
    run.push_back(&s);
    total += n;
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
    Seq& s = *run[i];
    s.n_computed += static_cast<int>(chunks_[i].tokens.size());
    s.waiting_since = step;
    if (!chunks_[i].want_logits) continue;
    float* lg = logits_.data() + row++ * V;
    const int n_vocab = model_.config.n_vocab;
    const int tok = s.sampler->sample(lg, n_vocab, s.tokens, static_cast<size_t>(s.n_prompt));
    const int n_new = static_cast<int>(s.tokens.size()) - s.n_prompt + 1;
    FinishReason fin = FinishReason::kNone;
    if (!s.ignore_eos && std::count(s.stop_ids.begin(), s.stop_ids.end(), tok)) {
      fin = FinishReason::kStop;
    } else if (n_new >= s.max_new) {
      fin = FinishReason::kLength;
    }
    if (fin == FinishReason::kStop) {  // the stop token is not part of the output
      events->push_back({s.id, -1, fin, 0.0f, {}, {}});
      cancel(s.id);
      continue;
    }
    events->push_back({s.id, tok, fin, 0.0f, {}, {}});
    if (s.logprobs >= 0)
      events->back().logprob = token_logprob(lg, n_vocab, tok, s.logprobs, &events->back().top);
    if (fin != FinishReason::kNone) {
      cancel(s.id);
      continue;
    }
    s.tokens.push_back(tok);
    if (moe) {
      s.experts.resize(s.tokens.size() * k);
      s.weights.resize(s.experts.size());
      const size_t at = (s.tokens.size() - 1) * k;
      const int pos = static_cast<int>(s.tokens.size()) - 1;
      Status rs = forward_.route_tokens(std::span<const int>(&s.tokens.back(), 1), pos,
                                        s.router_kv.get(), &s.experts[at], &s.weights[at]);
      if (!rs.ok()) {
        events->back().finish = FinishReason::kError;
        events->back().error = Status(rs.code(), "routing the sampled token: " + rs.message());
        cancel(s.id);
      }
    }
  }
  return Status::Ok();
}

}  // namespace rme
