// tokenizer: SentencePieceTokenizer, a tokenizer.model loaded with libsentencepiece.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace rme {

// Owns the libsentencepiece processor. Immutable after load; thread-safe (SentencePiece's
// Encode is const and reentrant).
class SentencePieceTokenizer final : public Tokenizer {
 public:
  static Result<std::unique_ptr<SentencePieceTokenizer>> load(const std::string& path);
  ~SentencePieceTokenizer() override;

  std::vector<int> encode(std::string_view text, bool add_bos) const override;
  std::string decode_token(int prev, int token) const override;
  const std::string& token_text(int id) const override { return pieces_[id]; }
  TokenType token_type(int id) const override { return types_[id]; }
  int n_vocab() const override { return static_cast<int>(pieces_.size()); }
  std::string kind() const override { return "sentencepiece (libsentencepiece)"; }

  // The vocabulary as score-ordered BPE data (for writing GGUF / tokenizer.json).
  BpeVocab export_vocab() const override;

 private:
  SentencePieceTokenizer();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
};

// Makes load_hf_tokenizer able to read tokenizer.model. Binaries that link libtorch must not call
// this (or link this library): Debian's libsentencepiece bundles protobuf 3.14, which crashes
// next to libtorch's libprotobuf 3.21 at load time.
void register_sentencepiece_loader();

}  // namespace rme
