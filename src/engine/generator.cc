// engine: the generate loop.
#include "engine/generator.h"

#include <limits>

#include "core/timer.h"
#include "scheduler/request_table.h"

namespace rme {

Generator::Generator(const Model& model, const Tokenizer& tokenizer, ThreadPool& pool, int n_ctx,
                     const KernelConfig& kernels)
    : model_(model),
      tokenizer_(tokenizer),
      n_ctx_(n_ctx),
      kv_(model, n_ctx),
      forward_(model, 64, pool, kernels),
      logits_(static_cast<size_t>(model.config.n_vocab)) {}

Result<GenerationStats> Generator::generate(std::span<const int> prompt,
                                            const GenerationLimits& limits,
                                            const SamplingParams& params,
                                            const std::function<bool(int)>& on_token) {
  RME_RETURN_IF_ERROR(params.validate());
  if (prompt.empty()) return invalid_argument("generate: empty prompt (no tokens, not even BOS)");
  if (static_cast<int>(prompt.size()) >= n_ctx_)
    return invalid_argument("generate: prompt of " + std::to_string(prompt.size()) +
                            " tokens does not fit the context of " + std::to_string(n_ctx_));
  GenerationStats st;
  st.n_prompt = static_cast<int>(prompt.size());
  std::vector<int> history(prompt.begin(), prompt.end());
  Sampler sampler(params);
  // The serving engine's stop rule; the length limits below are this loop's own (llama2.c's -n).
  const StopRules stop{std::numeric_limits<int>::max(), !limits.stop_at_eos, tokenizer_.stop_ids(),
                       nullptr};
  const int V = model_.config.n_vocab;

  double t0 = now_seconds();
  RME_RETURN_IF_ERROR(forward_.run(prompt, 0, kv_, logits_.data(), false));
  st.prompt_seconds = now_seconds() - t0;

  t0 = now_seconds();
  int pos = static_cast<int>(prompt.size());
  for (;;) {
    if (limits.max_total > 0 && pos >= limits.max_total) break;
    if (limits.max_new > 0 && st.n_generated >= limits.max_new) break;
    if (pos >= n_ctx_) break;
    int next = sampler.sample(logits_.data(), V, history);
    if (stop.check(next, st.n_generated + 1) == FinishReason::kStop) break;
    ++st.n_generated;
    history.push_back(next);
    if (!on_token(next)) break;
    if ((limits.max_total > 0 && pos + 1 >= limits.max_total) ||
        (limits.max_new > 0 && st.n_generated >= limits.max_new) || pos + 1 >= n_ctx_)
      break;  // no need to run the last token through the model
    const int tok[1] = {next};
    RME_RETURN_IF_ERROR(forward_.run(tok, pos, kv_, logits_.data(), false));
    ++pos;
  }
  st.gen_seconds = now_seconds() - t0;
  return st;
}

}  // namespace rme
