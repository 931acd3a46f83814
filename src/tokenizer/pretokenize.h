// tokenizer: byte-level BPE pre-tokenization (GPT-2 / Llama-3 style word splitting) and the
// GPT-2 byte <-> printable-character map.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rme {

enum class PreTokenizer {
  kGpt2,    // 's|'t|... | ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3,  // case-insensitive contractions, [^\r\n\p{L}\p{N}]?\p{L}+, \p{N}{1,3}, ...
  kQwen2,   // as kLlama3 but digits one at a time (\p{N})
  kSmolLM,  // each digit alone (\p{N}), then kGpt2 within the runs between (SmolLM, StarCoder)
};

// Splits text into the pieces BPE merges within. Without a Unicode database, code points >= 0x80
// count as letters unless they are Unicode spaces or general punctuation (U+2000-U+206F,
// U+3000-U+303F, U+FF00-U+FF0F); digits are ASCII. Lossless: the pieces concatenate to text.
std::vector<std::string_view> pretokenize(std::string_view text, PreTokenizer kind);

// GPT-2's reversible map from each byte to a printable code point (as UTF-8).
const std::string& byte_to_unicode(uint8_t b);
// Inverse: code point -> byte, or -1 if the code point is not in the map.
int unicode_to_byte(uint32_t cp);

}  // namespace rme
