// tokenizer: reader for llama2.c's tokenizer.bin (max_token_length, then per token: f32 score,
// i32 length, bytes).
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "tokenizer/bpe.h"

namespace rme {

// n_vocab comes from the model header (the file does not store it); pass -1 to read to EOF.
Result<BpeVocab> read_llama2c_vocab(const std::string& path, int n_vocab);

}  // namespace rme
