// apps/rme: `rme convert IN OUT [--type T]` — between GGUF, HF safetensors and llama2.c, and types.
#include "commands.h"
#include "common.h"
#include "core/timer.h"

namespace rme::cli {

void add_convert_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "convert", "Convert a model: OUT ending in .gguf writes GGUF, anything else an HF directory");
  auto args = std::make_shared<ModelArgs>();
  auto out = std::make_shared<std::string>();
  auto type = std::make_shared<std::string>();
  args->add(*app);
  app->add_option("out", *out, "output .gguf file or directory")->required();
  app->add_option("--type", *type,
                  "f32, f16, bf16, q8_0 or q4_0 (q8_0/q4_0: GGUF only; default: keep)");
  app->callback([=, &run] {
    run = [=]() -> int {
      std::optional<DType> t;
      if (!type->empty()) {
        t = dtype_from_name(*type);
        if (!t)
          return fail(
              invalid_argument("--type: '" + *type + "' is not one of f32, f16, bf16, q8_0, q4_0"));
      }
      auto loaded = load(*args);
      if (!loaded.ok()) return fail(loaded.status());
      const double t0 = now_seconds();
      const bool gguf = out->size() >= 5 && out->compare(out->size() - 5, 5, ".gguf") == 0;
      Status st = gguf ? write_gguf_model(*loaded->model, loaded->tokenizer.get(), *out, t)
                       : write_hf_model(*loaded->model, loaded->tokenizer.get(), *out, t);
      if (!st.ok()) return fail(st);
      std::fprintf(stderr, "wrote %s (%s) in %.2f s\n", out->c_str(),
                   gguf ? "gguf" : "safetensors directory", now_seconds() - t0);
      return 0;
    };
  });
}

}  // namespace rme::cli
