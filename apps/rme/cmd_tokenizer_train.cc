// apps/rme: `rme tokenizer-train` — a SentencePiece BPE vocabulary with byte fallback.
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "common.h"
#include "core/file.h"
#include "core/timer.h"
#include "formats/text_corpus.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"

namespace rme::cli {

void add_tokenizer_train_command(CLI::App& root, std::function<int()>& run) {
  auto* app = root.add_subcommand(
      "tokenizer-train", "Train a SentencePiece BPE tokenizer (byte fallback) on text files");
  auto a = std::make_shared<TokenizerTrainArgs>();
  app->add_option("--input", a->inputs, "text or .jsonl files")->required()->expected(1, -1);
  app->add_option("--vocab", a->vocab, "vocabulary size")->check(CLI::Range(300, 65536));
  app->add_option("--out", a->out, "output directory (tokenizer.model, tokenizer.json)")
      ->required();
  app->add_option("--max-lines", a->max_lines, "sample at most this many lines for training");
  app->callback([a, &run] { run = [a] { return run_tokenizer_train(*a); }; });
}

int run_tokenizer_train(const TokenizerTrainArgs& a) {
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec) return fail(io_error(a.out + ": " + ec.message()));
  // SentencePiece trains on lines: write every document's lines to one temp file.
  const std::string tmp = a.out + "/.train_text.tmp";
  std::string all;
  for (const auto& f : a.inputs) {
    auto docs = read_documents(f);
    if (!docs.ok()) return fail(docs.status());
    for (const auto& d : *docs) all += d + "\n";
  }
  if (Status st = write_file_atomic(tmp, all); !st.ok()) return fail(st);
  const double t0 = now_seconds();
  // identity normalization and no whitespace cleanup so decode(encode(text)) == text;
  // digits split so numbers tokenize uniformly (math, code).
  const std::string args =
      "--input=" + tmp + " --model_prefix=" + a.out + "/tokenizer --model_type=bpe" +
      " --vocab_size=" + std::to_string(a.vocab) +
      " --byte_fallback=true --character_coverage=0.9995 --split_digits=true"
      " --normalization_rule_name=identity --remove_extra_whitespaces=false"
      " --allow_whitespace_only_pieces=true --max_sentence_length=16384"
      " --input_sentence_size=" +
      std::to_string(a.max_lines) + " --shuffle_input_sentence=true --num_threads=" +
      std::to_string(std::max(1u, std::thread::hardware_concurrency())) +
      " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --minloglevel=1";
  auto st = sentencepiece::SentencePieceTrainer::Train(args);
  std::filesystem::remove(tmp, ec);
  std::filesystem::remove(a.out + "/tokenizer.vocab", ec);
  if (!st.ok()) return fail(invalid_argument("sentencepiece training failed: " + st.ToString()));
  auto tok = SentencePieceTokenizer::load(a.out + "/tokenizer.model");
  if (!tok.ok()) return fail(tok.status());
  // tokenizer.json too, so builds without libsentencepiece (the trainer) can tokenize.
  if (Status s = write_tokenizer_json((*tok)->export_vocab(), a.out + "/tokenizer.json"); !s.ok())
    return fail(s);
  std::fprintf(stderr, "trained %d-token BPE on %zu bytes in %.1f s -> %s/tokenizer.model\n",
               (*tok)->n_vocab(), all.size(), now_seconds() - t0, a.out.c_str());
  return 0;
}

}  // namespace rme::cli
