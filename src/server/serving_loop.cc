// server: the serving loop — admission, scheduling with expert lookahead, execution, streaming.
#include "server/serving_loop.h"

#include <algorithm>
#include <map>

#include "core/timer.h"

namespace rme {

bool RequestStream::next(StreamToken* token, double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
               [&] { return !tokens_.empty() || finish_ != FinishReason::kNone; });
  if (tokens_.empty()) return false;
  *token = std::move(tokens_.front());
  tokens_.pop_front();
  return true;
}

bool RequestStream::next_text(TextPiece* piece, double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
               [&] { return !text_.empty() || finish_ != FinishReason::kNone; });
  if (text_.empty()) return false;
  *piece = std::exchange(text_, {});
  return true;
}

int RequestStream::completion_tokens() const {
  std::lock_guard<std::mutex> lock(mu_);
  return completion_tokens_;
}

FinishReason RequestStream::finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finish_;
}

Status RequestStream::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void RequestStream::push(StreamToken token) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.push_back(std::move(token));
  }
  cv_.notify_all();
}

void RequestStream::push_text(TextPiece piece) {
  if (piece.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    text_.text += piece.text;
    for (auto& t : piece.tokens) text_.tokens.push_back(std::move(t));
  }
  cv_.notify_all();
}

void RequestStream::finish(FinishReason reason, Status error, int completion_tokens) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    finish_ = reason;
    error_ = std::move(error);
    completion_tokens_ = completion_tokens;
  }
  cv_.notify_all();
}

ServingLoop::ServingLoop(const Model& model, ThreadPool& pool, const BatchEngineOptions& engine)
    : model_(model),
      engine_options_(engine),
      engine_(model, pool, engine),
      table_(engine_.make_table()) {}

Result<std::unique_ptr<ServingLoop>> ServingLoop::create(const Model& model, ThreadPool& pool,
                                                         const BatchEngineOptions& engine,
                                                         const ServingOptions& options) {
  BatchEngineOptions e = engine;
  e.max_step_tokens = std::max(1, options.budget.max_tokens);
  std::unique_ptr<ServingLoop> loop(new ServingLoop(model, pool, e));
  loop->options_ = options;
  RME_ASSIGN_OR_RETURN(loop->policy_, make_policy(options.policy));
  if (model.moe.is_moe()) {
    RME_RETURN_IF_ERROR(loop->engine_.set_routing(options.routing));
    loop->table_ = loop->engine_.make_table();  // top-k may have changed
  }
  if (options.cost_prior.enabled()) {
    loop->cost_ = StepCostModel(options.cost_prior);
    loop->cost_params_ = options.cost_prior;
  } else if (options.calibrate) {
    loop->calibrate();  // before the store opens: experts are still in the mapping
  }
  if (model.moe.is_moe()) {
    const RoutingOptions& r = options.routing;
    if (options.expert_cache_bytes > 0) {
      const int k = r.top_k > 0 ? r.top_k : model.moe.top_k;
      if (k != 1)
        return invalid_argument(
            "expert cache: supports top-1 routing (the scheduler bounds a step's experts by each "
            "token's first choice)");
      ExpertStoreOptions so;
      so.budget_bytes = options.expert_cache_bytes;
      so.eviction = options.eviction;
      so.direct_io = options.direct_io;
      RME_ASSIGN_OR_RETURN(loop->store_, ExpertStore::open(model, so));
      const int cap = loop->store_->capacity();
      StepBudget& b = loop->options_.budget;
      b.max_experts = b.max_experts > 0 ? std::min(b.max_experts, cap) : cap;
    }
  }
  return loop;
}

ServingLoop::~ServingLoop() { stop(); }

int64_t ServingLoop::max_seq_len() const {
  return engine_options_.max_seq_len > 0 ? engine_options_.max_seq_len : model_.config.n_ctx;
}

namespace {
// A StopCheck as the request table's watcher.
class StopCheckWatcher : public TokenWatcher {
 public:
  explicit StopCheckWatcher(StopCheck check) : check_(std::move(check)) {}
  bool stops_after(const TokenEvent& event) override { return check_(event.token); }

 private:
  StopCheck check_;
};
}  // namespace

std::shared_ptr<RequestStream> ServingLoop::submit(RequestParams request, StopCheck stop) {
  if (stop) request.watch = std::make_shared<StopCheckWatcher>(std::move(stop));
  return enqueue(std::move(request), nullptr);
}

std::shared_ptr<RequestStream> ServingLoop::submit_text(RequestParams request,
                                                        std::shared_ptr<CompletionText> text) {
  request.watch = text;
  return enqueue(std::move(request), std::move(text));
}

std::shared_ptr<RequestStream> ServingLoop::enqueue(RequestParams request,
                                                    std::shared_ptr<CompletionText> text) {
  auto stream = std::make_shared<RequestStream>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    incoming_.push_back({std::move(request), stream, now_seconds(), std::move(text)});
  }
  wake_.notify_all();
  return stream;
}

ExpertStoreStats ServingLoop::cache_stats() const {
  return store_ ? store_->stats() : ExpertStoreStats{};
}

StepCostParams ServingLoop::step_cost() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cost_params_;
}

// Runs one request through the engine outside the loop: a short warm-up prefill, a prefill of
// n_big tokens and a decode step, timing the last two. Priors come from the weight bytes each
// step reads; a request that does not fit (tiny KV cache or context) leaves the model without
// calibration (zero parameters: the expert policy then groups unconditionally).
void ServingLoop::calibrate() {
  const LlamaConfig& c = model_.config;
  const int n_big = std::min({16, engine_.max_step_tokens(), static_cast<int>(max_seq_len()) - 8});
  if (n_big < 2) return;
  RequestParams r;
  for (int i = 0; i < 4 + n_big; ++i) r.prompt.push_back((i + 1) % c.n_vocab);
  r.max_new = 2;
  r.ignore_eos = true;
  auto id = engine_.admit(r, -1, 0, &table_);
  if (!id.ok()) return;
  auto run = [&](int n, double* seconds, int* experts) {
    StepPlan plan;
    plan.chunks.push_back({*id, n});
    *experts = static_cast<int>(table_.plan_experts(plan).size());
    const double t0 = now_seconds();
    auto chunks = table_.apply(plan, 0);
    std::vector<TokenEvent> events;
    const bool ok = chunks.ok() && engine_.execute(table_, *chunks, {}, &events).ok();
    table_.apply(events);
    *seconds = now_seconds() - t0;
    return ok;
  };
  double t_warm = 0, t_big = 0, t_one = 0;
  int e_warm = 0, e_big = 0, e_one = 0;
  const bool ok = run(4, &t_warm, &e_warm) && run(n_big, &t_big, &e_big) &&
                  table_.find(*id) != nullptr && run(1, &t_one, &e_one);
  table_.remove(*id);
  if (!ok) return;
  double shared = static_cast<double>(model_.decode_weight_bytes(1)), expert = 0;
  if (model_.moe.is_moe() && model_.moe.n_expert >= 2) {
    expert = static_cast<double>(model_.decode_weight_bytes(2)) - shared;
    shared -= expert;
  }
  const double kv_bytes = 2.0 * c.n_layer * c.kv_dim() * sizeof(float);
  cost_ = StepCostModel(calibrate_step_cost(t_one, e_one, t_big, n_big, e_big, shared, expert,
                                            kv_bytes, options_.expert_cache_bytes > 0));
  std::lock_guard<std::mutex> lock(mu_);
  cost_params_ = cost_.params();
}

std::vector<StepRecord> ServingLoop::take_steps() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(steps_, {});
}

// Simulates the policy `lookahead_steps` steps past the current one (already applied to the
// table) over what is known now: queued prompt tokens and each request's next token; tokens not
// yet sampled are unknown, so a request waiting for its next one sits out. Returns each expert's
// next use (a step number; kNeverUsed if not seen) and the next step's experts.
std::vector<int64_t> ServingLoop::lookahead(const StepBudget& budget,
                                            std::vector<int>* next_experts) const {
  std::vector<int64_t> next_use(model_.moe.n_expert, kNeverUsed);
  RequestTable sim = table_;
  StepBudget b = budget;
  for (int h = 1; h <= options_.lookahead_steps && sim.size() > 0; ++h) {
    b.free_blocks = sim.free_blocks();
    const StepPlan p = policy_->schedule(sim.infos(), b, step_ + h);
    if (p.chunks.empty()) break;
    for (int e : sim.plan_experts(p)) {
      next_use[e] = std::min(next_use[e], step_ + h);
      if (h == 1) next_experts->push_back(e);
    }
    if (!sim.apply(p, step_ + h).ok()) break;  // a policy bug; the real step will report it
  }
  return next_use;
}

void ServingLoop::finish(int64_t id, FinishReason reason, const Status& error) {
  table_.remove(id);  // frees its blocks now; a request the table ended is already gone
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  metrics_.add(std::string("requests_total{status=\"") + finish_reason_name(reason) + "\"}");
  if (reason == FinishReason::kStop || reason == FinishReason::kLength) {
    metrics_.e2e.observe(now_seconds() - s.submitted);
    if (s.n_tokens > 1) metrics_.tpot.observe((s.last_token - s.first_token) / (s.n_tokens - 1));
  }
  int n_tokens = s.n_tokens;
  if (s.text) {  // what the stop-string hold-back kept: no stop can match any more
    s.stream->push_text(s.text->finish());
    n_tokens = s.text->n_tokens();
  }
  s.stream->finish(reason, error, n_tokens);
  sessions_.erase(it);
}

Result<bool> ServingLoop::step() {
  // Admission and cancellation.
  std::deque<Incoming> incoming;
  {
    std::lock_guard<std::mutex> lock(mu_);
    incoming.swap(incoming_);
  }
  for (Incoming& in : incoming) {
    auto id = engine_.admit(in.request, arrivals_++, step_, &table_);
    if (!id.ok()) {
      metrics_.add("requests_total{status=\"rejected\"}");
      in.stream->finish(FinishReason::kError, id.status());
      continue;
    }
    sessions_[*id] = Session{std::move(in.stream), std::move(in.text), in.submitted};
  }
  std::vector<int64_t> cancelled;
  for (const auto& [id, s] : sessions_)
    if (s.stream->cancelled()) cancelled.push_back(id);
  for (int64_t id : cancelled) finish(id, FinishReason::kCancelled);
  if (sessions_.empty()) {
    ServingGauges g = metrics_.gauges();
    g.running = g.waiting = 0;
    g.kv_blocks_used = table_.n_block() - table_.free_blocks();
    metrics_.set_gauges(g);
    return false;
  }

  const double t0 = now_seconds();
  StepBudget budget = options_.budget;
  budget.free_blocks = table_.free_blocks();
  budget.block_size = table_.block_size();
  // Loading experts count as missing: the policy serves what is ready while they load.
  if (store_) budget.resident_experts = store_->ready();
  budget.expert_cache = store_ != nullptr;
  budget.cost = cost_.params();
  const std::vector<SeqInfo> infos = table_.infos();
  const StepPlan plan = policy_->schedule(infos, budget, step_);
  const std::vector<int> experts = table_.plan_experts(plan);
  RME_ASSIGN_OR_RETURN(const std::vector<StepChunk> chunks, table_.apply(plan, step_));
  std::vector<const ExpertWeights*> table;
  double stall = 0;
  if (store_) {
    std::vector<int> next_experts;
    std::vector<int64_t> next_use = lookahead(budget, &next_experts);
    for (int e : experts) next_use[e] = step_;
    const double stall0 = store_->stats().stall_seconds;
    auto acquired = store_->acquire(experts, next_use, step_);
    stall = store_->stats().stall_seconds - stall0;
    if (!acquired.ok()) {  // e.g. the checkpoint changed on disk: fail this step's requests only
      for (const auto& c : plan.chunks) finish(c.id, FinishReason::kError, acquired.status());
      ++step_;
      return true;
    }
    table = std::move(acquired).value();
    if (options_.prefetch) {
      // Experts of tokens this step leaves waiting load next, by deadline, then what the
      // lookahead says the following steps use.
      std::vector<int> wanted = prefetch_order(infos, plan, options_.budget.aging_steps, &next_use);
      for (int e : next_experts)
        if (std::find(wanted.begin(), wanted.end(), e) == wanted.end()) wanted.push_back(e);
      store_->prefetch(wanted, next_use, step_);
    }
  }
  std::vector<TokenEvent> events;
  RME_RETURN_IF_ERROR(engine_.execute(table_, chunks, std::move(table), &events));
  table_.apply(events);
  const double t1 = now_seconds();
  const double predicted = cost_.predict(plan.shape);
  cost_.observe(plan.shape, t1 - t0);
  for (TokenEvent& ev : events) {
    auto it = sessions_.find(ev.id);
    if (it == sessions_.end()) continue;
    Session& s = it->second;
    if (ev.token >= 0) {
      if (s.n_tokens == 0) {
        s.first_token = t1;
        metrics_.ttft.observe(t1 - s.submitted);
      }
      s.last_token = t1;
      ++s.n_tokens;
      metrics_.add("generated_tokens_total");
      // Text mode: the table's apply() already gave the token to the request's CompletionText.
      if (s.text)
        s.stream->push_text(s.text->take());
      else
        s.stream->push({ev.token, ev.logprob, std::move(ev.top)});
    }
    if (ev.finish != FinishReason::kNone) finish(ev.id, ev.finish, ev.error);
  }
  int prompt_tokens = 0;
  for (const auto& c : plan.chunks)
    for (const auto& i : infos)
      if (i.id == c.id && i.pending() > 1) prompt_tokens += c.n_tokens;
  metrics_.add("prompt_tokens_total", prompt_tokens);
  metrics_.add("steps_total");
  if (!plan.preempted.empty())
    metrics_.add("preemptions_total", static_cast<int64_t>(plan.preempted.size()));
  metrics_.batch_tokens.observe(plan.n_tokens);
  metrics_.batch_seqs.observe(static_cast<double>(plan.chunks.size()));
  if (model_.moe.is_moe()) metrics_.step_experts.observe(static_cast<double>(experts.size()));
  {
    ServingGauges g;
    g.running = table_.n_running();  // holding KV blocks
    g.waiting = static_cast<double>(table_.size()) - table_.n_running();
    g.kv_blocks_used = table_.n_block() - table_.free_blocks();
    if (store_) {
      const ExpertStoreStats st = store_->stats();
      g.cache_hit_rate = st.hit_rate();
      g.cache_hits = st.hits;
      g.cache_misses = st.misses;
      g.cache_bytes_read = st.bytes_read;
      g.io_stall_seconds = st.stall_seconds;
    }
    metrics_.set_gauges(g);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    steps_.push_back({step_, plan.n_tokens, static_cast<int>(plan.chunks.size()), experts, t1 - t0,
                      predicted, plan.shape.n_loads, stall});
    cost_params_ = cost_.params();
  }
  ++step_;
  return true;
}

void ServingLoop::start() {
  stop_ = false;
  thread_ = std::thread([this] {
    while (!stop_) {
      Result<bool> worked = step();
      if (!worked.ok()) {  // an engine invariant broke: fail the live requests, keep serving
        std::vector<int64_t> ids;
        for (const auto& [id, s] : sessions_) ids.push_back(id);
        for (int64_t id : ids) finish(id, FinishReason::kError, worked.status());
        continue;
      }
      if (!*worked) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait_for(lock, std::chrono::milliseconds(50),
                       [&] { return stop_ || !incoming_.empty(); });
      }
    }
  });
}

void ServingLoop::stop() {
  stop_ = true;
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace rme
