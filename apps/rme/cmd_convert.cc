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
                  std::string(TypeChoice::names()) +
                      " (quantized types and the K-quant mixes q4_k_m / q5_k_m: GGUF only; "
                      "default: keep)");
  app->callback([=, &run] {
    run = [=]() -> int {
      TypeChoice t;
      if (!type->empty()) {
        auto parsed = TypeChoice::parse(*type);
        if (!parsed.ok()) return fail(invalid_argument("--type: " + parsed.status().message()));
        t = *parsed;
      }
      const bool gguf = out->size() >= 5 && out->compare(out->size() - 5, 5, ".gguf") == 0;
      // (write_hf_model refuses quantized types with the reason.)
      auto loaded = load(*args);
      if (!loaded.ok()) return fail(loaded.status());
      const double t0 = now_seconds();
      Status st = gguf ? write_gguf_model(*loaded->model, loaded->tokenizer.get(), *out, t)
                       : write_hf_model(*loaded->model, loaded->tokenizer.get(), *out, t.base);
      if (!st.ok()) return fail(st);
      std::fprintf(stderr, "wrote %s (%s) in %.2f s\n", out->c_str(),
                   gguf ? "gguf" : "safetensors directory", now_seconds() - t0);
      return 0;
    };
  });
}

}  // namespace rme::cli
