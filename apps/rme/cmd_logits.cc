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
  auto args = std::make_shared<ModelArgs>();
  auto ids_text = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  args->add(*app);
  app->add_option("--ids", *ids_text, "token ids, separated by spaces or commas")->required();
  app->add_option("-o,--out", *out, "output .npy file")->required();
  app->callback([=, &run] {
    run = [=]() -> int {
      std::vector<int> ids;
      std::string s = *ids_text;
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
      auto loaded = load(*args);
      if (!loaded.ok()) return fail(loaded.status());
      const Model& m = *loaded->model;
      KvCache kv(m, static_cast<int>(ids.size()));
      auto kernels = args->kernels();
      if (!kernels.ok()) return fail(kernels.status());
      Forward fwd(m, 64, ThreadPool::global(), *kernels);
      std::vector<float> logits(ids.size() * static_cast<size_t>(m.config.n_vocab));
      if (Status st = fwd.run(ids, 0, kv, logits.data(), true); !st.ok()) return fail(st);
      if (Status st = write_npy_f32(*out, logits.data(),
                                    {static_cast<int64_t>(ids.size()), m.config.n_vocab});
          !st.ok())
        return fail(st);
      std::fprintf(stderr, "wrote %s: [%zu, %d] float32\n", out->c_str(), ids.size(),
                   m.config.n_vocab);
      return 0;
    };
  });
}

}  // namespace rme::cli
