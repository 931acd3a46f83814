// tokenizer: Hugging Face tokenizer files — tokenizer.json (BPE models) read and write,
// tokenizer.model via libsentencepiece, special tokens from tokenizer_config.json and
// generation_config.json.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"

namespace rme {

Result<BpeVocab> read_tokenizer_json(const std::string& path);
// Writes vocab as an HF tokenizer.json. Score-ordered SentencePiece vocabularies get merges
// derived from their scores (pairs ranked by the merged token's score, as HF's converters do).
Status write_tokenizer_json(const BpeVocab& vocab, const std::string& path);

// Loads the tokenizer of an HF model directory: tokenizer.json if present, else
// tokenizer.model; then applies tokenizer_config.json / generation_config.json.
Result<std::unique_ptr<Tokenizer>> load_hf_tokenizer(const std::string& dir);

// Updates `special` from tokenizer_config.json / generation_config.json in dir (if present).
Status apply_hf_special_tokens(const std::string& dir, const Tokenizer& tok,
                               SpecialTokens& special);

// tokenizer.model support is plugged in by binaries that link libsentencepiece (see
// sentencepiece_tokenizer.h); without it such directories report kUnsupported.
using SentencePieceLoader = Result<std::unique_ptr<Tokenizer>> (*)(const std::string& path);
void set_sentencepiece_loader(SentencePieceLoader loader);

}  // namespace rme
