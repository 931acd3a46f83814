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
#include "tokenizer/tokenizer.h"

namespace rme {

// Immutable once created; thread-safe.
class BpeTokenizer final : public Tokenizer {
 public:
  // Validates the vocabulary (sizes agree, merges name known tokens, special ids in range).
  static Result<std::unique_ptr<BpeTokenizer>> create(BpeVocab vocab);

  std::vector<int> encode(std::string_view text, bool add_bos) const override {
    return encode_until(text, add_bos, SIZE_MAX);
  }
  std::string decode_token(int prev, int token) const override;
  const std::string& token_text(int id) const override { return vocab_.tokens[id]; }
  TokenType token_type(int id) const override { return vocab_.types[id]; }
  int n_vocab() const override { return static_cast<int>(vocab_.tokens.size()); }
  std::string kind() const override;

  const BpeVocab& vocab() const { return vocab_; }
  int find(std::string_view text) const;  // -1 if absent
  // A copy of the vocabulary with SentencePiece spaces written as U+2581 (llama2.c stores " ").
  BpeVocab export_vocab() const override;

 private:
  explicit BpeTokenizer(BpeVocab vocab) : vocab_(std::move(vocab)) {}
  // Stops after the pre-tokenized word (byte-level) or space-led word (SentencePiece style,
  // when word_split_) that takes the output past max_tokens.
  std::vector<int> encode_until(std::string_view text, bool add_bos,
                                size_t max_tokens) const override;
  // Merges the symbols of one piece in place (symbols are token ids).
  void merge(std::vector<int>& ids) const;
  void encode_plain(std::string_view text, bool at_start, size_t max_tokens,
                    std::vector<int>& out) const;
  bool pair_priority(int a, int b, float& priority, int& merged) const;

  BpeVocab vocab_;
  std::unordered_map<std::string, int> index_;
  std::unordered_map<uint64_t, std::pair<int, int>> merge_rank_;  // (a,b) -> (rank, merged id)
  std::vector<std::pair<std::string, int>> specials_;             // matched verbatim in text
  int byte_token_[256];                                           // <0xNN> ids or -1
  // SentencePiece style: no token has a space marker after another character, so no merge
  // crosses the start of a space-led word and words merge alone (the same tokens, sooner).
  bool word_split_ = false;
};

// SentencePiece scores that rank a SentencePiece-style vocabulary's merges as its merge list does,
// for writers of formats that keep scores, not merges (GGUF "llama", whose readers merge the
// adjacent pair whose concatenation scores highest): the token the r-th merge makes (its first
// making, 0-based) scores -(r + 1); control, unknown and user-defined tokens 0; the rest
// (characters, bytes) below every merge. vocab.scores when the vocabulary has no merges (its
// scores then rank them; a merge-ranked vocabulary's scores are placeholders).
std::vector<float> spm_scores(const BpeVocab& vocab);

}  // namespace rme
