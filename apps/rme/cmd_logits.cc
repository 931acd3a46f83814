// apps/rme: `rme logits` — float32 logits of every position as an [n_tokens, vocab] .npy array.
#include <sstream>

#include "commands.h"
#include "common.h"
#include "core/thread_pool.h"
#include "formats/npy.h"
#include "model/forward.h"

namespace rme::cli {

void add_logits_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand("logits",
                                  "Write the logits of every position of a token sequence as .npy");
  auto a = std::make_shared<LogitsArgs>();
  a->model.add(*app);
  app->add_option("--ids", a->ids_text, "token ids, separated by spaces or commas")->required();
  app->add_option("-o,--out", a->out, "output .npy file")->required();
  app->callback([a, &run] { run = [a] { return run_logits(*a); }; });
}

int run_logits(const LogitsArgs& a) {
  std::vector<int> ids;
  std::string s = a.ids_text;
  for (char& ch : s)
    if (ch == ',') ch = ' ';
  std::istringstream in(s);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0 || v > (1 << 30))
      return fail(invalid_argument("--ids: '" + word + "' is not a token id"));
    ids.push_back(static_cast<int>(v));
  }
  if (ids.empty()) return fail(invalid_argument("--ids: no token ids given"));
  auto loaded = load(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& m = *loaded->model;
  KvCache kv(m, static_cast<int>(ids.size()));
  auto kernels = a.model.kernels();
  if (!kernels.ok()) return fail(kernels.status());
  if (Status st = prepare_weights(a.model, *loaded->model, *kernels); !st.ok()) return fail(st);
  Forward fwd(m, 64, ThreadPool::global(), *kernels);
  std::vector<float> logits(ids.size() * static_cast<size_t>(m.config.n_vocab));
  if (Status st = fwd.run(ids, 0, kv, logits.data(), true); !st.ok()) return fail(st);
  if (Status st =
          write_npy_f32(a.out, logits.data(), {static_cast<int64_t>(ids.size()), m.config.n_vocab});
      !st.ok())
    return fail(st);
  std::fprintf(stderr, "wrote %s: [%zu, %d] float32\n", a.out.c_str(), ids.size(),
               m.config.n_vocab);
  return 0;
}

}  // namespace rme::cli
