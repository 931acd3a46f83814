// apps/rme: `rme convert IN OUT [--type T]` — between GGUF, HF safetensors and llama2.c, and types.
#include "commands.h"
#include "common.h"
#include "core/timer.h"

namespace rme::cli {

void add_convert_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "convert", "Convert a model: OUT ending in .gguf writes GGUF, anything else an HF directory");
  auto a = std::make_shared<ConvertArgs>();
  a->model.add(*app);
  app->add_option("out", a->out, "output .gguf file or directory")->required();
  app->add_option("--type", a->type,
                  std::string(TypeChoice::names()) +
                      " (quantized types and the K-quant mixes q4_k_m / q5_k_m: GGUF only; "
                      "default: keep)");
  app->callback([a, &run] { run = [a] { return run_convert(*a); }; });
}

int run_convert(const ConvertArgs& a) {
  TypeChoice t;
  if (!a.type.empty()) {
    auto parsed = TypeChoice::parse(a.type);
    if (!parsed.ok()) return fail(invalid_argument("--type: " + parsed.status().message()));
    t = *parsed;
  }
  const bool gguf = a.out.size() >= 5 && a.out.compare(a.out.size() - 5, 5, ".gguf") == 0;
  // (write_hf_model refuses quantized types with the reason.)
  auto loaded = load(a.model);
  if (!loaded.ok()) return fail(loaded.status());
  const double t0 = now_seconds();
  Status st = gguf ? write_gguf_model(*loaded->model, loaded->tokenizer.get(), a.out, t)
                   : write_hf_model(*loaded->model, loaded->tokenizer.get(), a.out, t.base);
  if (!st.ok()) return fail(st);
  std::fprintf(stderr, "wrote %s (%s) in %.2f s\n", a.out.c_str(),
               gguf ? "gguf" : "safetensors directory", now_seconds() - t0);
  return 0;
}

}  // namespace rme::cli
