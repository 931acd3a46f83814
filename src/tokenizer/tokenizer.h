// tokenizer: the Tokenizer interface every vocabulary kind implements (text <-> token ids).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace rme {

// Immutable after construction; all methods are const and thread-safe.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<int> encode(std::string_view text, bool add_bos) const = 0;
  // The bytes token `token` contributes to the text when it follows `prev` (-1 at the start).
  // Streaming output concatenates these; they may split a UTF-8 character.
  virtual std::string decode_token(int prev, int token) const = 0;
  // The stored form of a token ("▁the", "<0x0A>", "Ġthe").
  virtual const std::string& token_text(int id) const = 0;
  virtual TokenType token_type(int id) const = 0;
  virtual int n_vocab() const = 0;
  virtual std::string kind() const = 0;  // "sentencepiece-bpe", "byte-level-bpe", ...
  // The vocabulary as BPE data, spaces as U+2581 (what GGUF and tokenizer.json writers store).
  virtual BpeVocab export_vocab() const = 0;

  const SpecialTokens& special() const { return special_; }
  void set_special(const SpecialTokens& s) { special_ = s; }
  bool is_eos(int id) const;
  // The ids that end a generation, ascending: EOS, any extra EOS, and BOS (a model that samples
  // BOS starts a new document: llama2.c's models end a story so). The one set every decode loop
  // stops on.
  std::vector<int> stop_ids() const;

  std::string decode(std::span<const int> ids) const;

  // The text's tokens (BOS first with add_bos), or nullopt when there are more than max_tokens
  // of them. Time and memory are bounded by max_tokens, not by the text, so refusing an
  // over-long prompt costs little: a text of more than max_tokens x max_token_bytes() bytes is
  // refused unread (no token stands for more bytes), and a tokenizer that can stop part way
  // (encode_until) stops once past the limit.
  std::optional<std::vector<int>> encode_at_most(std::string_view text, bool add_bos,
                                                 size_t max_tokens) const;
  // The most text bytes one token stands for: its stored form's length (which is never shorter
  // than the bytes it decodes to), at least 4 (an unknown UTF-8 character).
  size_t max_token_bytes() const;

 protected:
  // Encodes until more than max_tokens tokens are out; it may stop there, the rest untokenized
  // (the first max_tokens are exact either way). The default encodes everything.
  virtual std::vector<int> encode_until(std::string_view text, bool add_bos,
                                        size_t /*max_tokens*/) const {
    return encode(text, add_bos);
  }
  // For implementations to cache max_token_bytes() once their vocabulary is final.
  void cache_max_token_bytes() { max_token_bytes_ = max_token_bytes(); }

  SpecialTokens special_;
  size_t max_token_bytes_ = 0;  // 0: not cached, computed per call
};

}  // namespace rme
