// tokenizer: BpeTokenizer — one merge engine for SentencePiece-style vocabularies (llama2.c
// tokenizer.bin, GGUF "llama", HF tokenizer.json with byte fallback) and byte-level BPE (GGUF
// "gpt2", HF tokenizer.json of Llama-3 / Qwen2).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace rme {

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

// Immutable once created; thread-safe.
class BpeTokenizer final : public Tokenizer {
 public:
  // Validates the vocabulary (sizes agree, merges name known tokens, special ids in range).
  static Result<std::unique_ptr<BpeTokenizer>> create(BpeVocab vocab);

  std::vector<int> encode(std::string_view text, bool add_bos) const override;
  std::string decode_token(int prev, int token) const override;
  const std::string& token_text(int id) const override { return vocab_.tokens[id]; }
  TokenType token_type(int id) const override { return vocab_.types[id]; }
  int n_vocab() const override { return static_cast<int>(vocab_.tokens.size()); }
  std::string kind() const override;

  const BpeVocab& vocab() const { return vocab_; }
  int find(std::string_view text) const;  // -1 if absent
  // A copy of the vocabulary with SentencePiece spaces written as U+2581 (llama2.c stores " ").
  BpeVocab vocab_with_marker() const;

 private:
  explicit BpeTokenizer(BpeVocab vocab) : vocab_(std::move(vocab)) {}
  // Merges the symbols of one piece in place (symbols are token ids).
  void merge(std::vector<int>& ids) const;
  void encode_plain(std::string_view text, bool at_start, std::vector<int>& out) const;
  bool pair_priority(int a, int b, float& priority, int& merged) const;

  BpeVocab vocab_;
  std::unordered_map<std::string, int> index_;
  std::unordered_map<uint64_t, std::pair<int, int>> merge_rank_;  // (a,b) -> (rank, merged id)
  std::vector<std::pair<std::string, int>> specials_;            // matched verbatim in text
  int byte_token_[256];                                           // <0xNN> ids or -1
};

}  // namespace rme
