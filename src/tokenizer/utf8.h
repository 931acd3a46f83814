// tokenizer: minimal UTF-8 helpers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rme {

// Length in bytes of the UTF-8 sequence starting with lead byte c (1 for invalid lead bytes, so
// malformed input still advances).
int utf8_len(unsigned char c);
// Whether s is well-formed UTF-8.
bool utf8_valid(std::string_view s);
// Decodes the code point at s[i] (advancing i); invalid bytes decode as themselves.
uint32_t utf8_next(std::string_view s, size_t& i);
void utf8_append(std::string& out, uint32_t cp);

}  // namespace rme
