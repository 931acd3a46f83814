// tokenizer: plain-data description of a vocabulary (token kinds, special ids, BPE tables), shared
// by every tokenizer and by the file formats that store vocabularies.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tokenizer/pretokenize.h"

namespace rme {

// Token kinds, numbered as GGUF's tokenizer.ggml.token_type.
enum class TokenType : int {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct SpecialTokens {
  int bos = -1;
  int eos = -1;
  int unk = -1;
  int pad = -1;
  std::vector<int> extra_eos;  // other ids that end generation (e.g. Llama-3 <|eot_id|>)
  bool add_bos = true;         // prepend BOS when encoding a prompt
};

// Everything that defines a BPE vocabulary, as plain data (formats fill and write it).
struct BpeVocab {
  enum class Mode {
    kSentencePiece,  // spaces become `space_marker`; unknown characters fall back to <0xNN>
    kByteLevel,      // bytes map to printable code points; text is pre-tokenized first
  };
  Mode mode = Mode::kSentencePiece;
  PreTokenizer pre_tokenizer = PreTokenizer::kLlama3;  // byte-level only
  std::vector<std::string> tokens;
  std::vector<TokenType> types;  // empty = all normal (bytes/controls detected by text)
  // Merge priority: either ranked merges (HF / GGUF gpt2) or, when `merges` is empty, token
  // scores (SentencePiece / llama2.c: the pair whose concatenation scores highest merges first).
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<float> scores;
  std::string space_marker = "\xE2\x96\x81";  // U+2581 "▁"; llama2.c stores plain " "
  bool add_space_prefix = true;               // SentencePiece's add_dummy_prefix
  bool ignore_merges = false;  // byte-level: a word that is itself a token skips merging
  SpecialTokens special;
};

}  // namespace rme
