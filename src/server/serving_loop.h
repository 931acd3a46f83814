// server: ServingLoop, the schedule() -> execute -> update() loop that ties the batch engine, a
// scheduling policy and the expert cache together, and RequestStream, how a client gets tokens.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "engine/batch_engine.h"
#include "engine/expert_store.h"
#include "scheduler/expert_trace.h"
#include "scheduler/schedule.h"
#include "scheduler/step_cost.h"
#include "server/completion_text.h"
#include "server/metrics.h"

namespace rme {

// What one request produces, from the loop thread to a client thread: its tokens, or, for a
// request submitted with its CompletionText (submit_text), the text the loop released, each
// token detokenized once there. Thread-safe. cancel() from the client ends the request at the
// next step and frees its blocks.
class RequestStream {
 public:
  // Client side: waits up to timeout_s for the next token; false when nothing more will come
  // (finished() tells why) or on timeout (then finished() is kNone).
  bool next(StreamToken* token, double timeout_s);
  // Text mode: waits up to timeout_s for text, then takes all released so far; false when there
  // is none (finished, or a timeout). Text released before the finish is always taken first.
  bool next_text(TextPiece* piece, double timeout_s);
  FinishReason finished() const;
  Status error() const;           // why, when finished() is kError
  int completion_tokens() const;  // once finished: tokens the completion counts (usage)
  // Ends the request at the next step with kCancelled (the client left) and frees its blocks.
  // Stop strings end requests on the loop thread instead (StopCheck).
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  // Loop side.
  void push(StreamToken token);
  void push_text(TextPiece piece);
  void finish(FinishReason reason, Status error = Status::Ok(), int completion_tokens = 0);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamToken> tokens_;
  TextPiece text_;
  int completion_tokens_ = 0;
  FinishReason finish_ = FinishReason::kNone;
  Status error_;
  std::atomic<bool> cancelled_{false};
};

// Watches a request's tokens on the loop thread, in order (as its TokenWatcher); true when the
// text up to and including this token reaches a stop string: the request table then ends it with
// kStop at once, so no step is spent past the stop. Called on the loop thread only.
using StopCheck = std::function<bool(int token)>;

struct ServingOptions {
  std::string policy = "fcfs";
  StepBudget budget;               // max_tokens, max_seqs, max_experts, prefill_chunk, aging_steps
  int64_t expert_cache_bytes = 0;  // 0 = experts read in place from the mapped file
  Eviction eviction = Eviction::kBelady;
  bool direct_io = false;
  bool prefetch = true;
  int lookahead_steps = 8;  // steps simulated ahead for belady's next use and for prefetch
  RoutingOptions routing;
  // Time a prefill and a decode step at start-up (before the server reports ready; it also
  // touches every weight the steps read) to calibrate the step cost model.
  bool calibrate = true;
  // Used instead of the start-up calibration when enabled() (a cost model measured elsewhere;
  // tests that want a policy to group). Measured steps correct it all the same.
  StepCostParams cost_prior;
};

// Owns the engine, the policy and the expert store; borrows the model and pool. submit() and
// metrics are thread-safe; step() runs on one thread (start() spawns it). Bad requests fail
// submit() or finish their stream with kError; the loop keeps serving.
class ServingLoop {
 public:
  static Result<std::unique_ptr<ServingLoop>> create(const Model& model, ThreadPool& pool,
                                                     const BatchEngineOptions& engine,
                                                     const ServingOptions& options);
  ~ServingLoop();

  // The engine's check of a request (BatchEngine::validate); thread-safe. Callers that must
  // answer before a stream starts (HTTP: 400) call it; admission runs it again all the same.
  Status validate(const RequestParams& request) const { return engine_.validate(request); }
  // Queues a request; a request validate() refuses finishes its stream with kError and the
  // message at admission. stop, when set, ends it at a stop string. The stream gets tokens.
  std::shared_ptr<RequestStream> submit(RequestParams request, StopCheck stop = nullptr);
  // Queues a request whose stream gets text: `text` (its stop strings end the request) becomes
  // the loop thread's until the request ends; the caller must not touch it after this call.
  std::shared_ptr<RequestStream> submit_text(RequestParams request,
                                             std::shared_ptr<CompletionText> text);
  // Admits, schedules and executes one step. Returns false when there was nothing to do.
  Result<bool> step();
  void start();  // a thread calling step(), sleeping when idle
  void stop();

  ServingMetrics& metrics() { return metrics_; }
  ExpertStoreStats cache_stats() const;
  std::vector<StepRecord> take_steps();  // records since the last call
  StepCostParams step_cost() const;      // the cost model's current parameters
  const Model& model() const { return model_; }
  int64_t max_seq_len() const;

 private:
  ServingLoop(const Model& model, ThreadPool& pool, const BatchEngineOptions& engine);
  std::vector<int64_t> lookahead(const StepBudget& budget, std::vector<int>* next_experts) const;
  std::shared_ptr<RequestStream> enqueue(RequestParams request,
                                         std::shared_ptr<CompletionText> text);
  // The one end of a session: removes the request from the table, flushes its text, counts it
  // and finishes its stream.
  void finish(int64_t id, FinishReason reason, const Status& error = Status::Ok());
  void calibrate();

  const Model& model_;
  BatchEngineOptions engine_options_;
  BatchEngine engine_;
  RequestTable table_;  // every live request's state and when it ends (the stop rules)
  ServingOptions options_;
  std::unique_ptr<Policy> policy_;
  std::unique_ptr<ExpertStore> store_;
  ServingMetrics metrics_;
  StepCostModel cost_;
  int64_t step_ = 0, arrivals_ = 0;

  mutable std::mutex mu_;       // guards incoming_, steps_, cost_params_
  StepCostParams cost_params_;  // a copy of cost_'s for other threads
  std::condition_variable wake_;
  struct Incoming {
    RequestParams request;
    std::shared_ptr<RequestStream> stream;
    double submitted;                      // seconds (loop clock)
    std::shared_ptr<CompletionText> text;  // text mode
  };
  std::deque<Incoming> incoming_;
  std::vector<StepRecord> steps_;
  // The loop thread's own, one per admitted request, made at admission and erased only by
  // finish(id): how its output reaches the client, and its latency bookkeeping.
  struct Session {
    std::shared_ptr<RequestStream> stream;
    std::shared_ptr<CompletionText> text;  // text mode: the request's TokenWatcher too
    double submitted = 0, first_token = 0, last_token = 0;
    int n_tokens = 0;
  };
  std::map<int64_t, Session> sessions_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace rme
