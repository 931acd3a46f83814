// tokenizer: hand-written equivalents of the GPT-2 and Llama-3 pre-tokenizer regexes.
#include "tokenizer/pretokenize.h"

#include <array>
#include <cctype>

#include "tokenizer/utf8.h"

namespace rme {
namespace {

enum class Cls { kLetter, kDigit, kSpace, kOther };

bool is_unicode_space(uint32_t cp) {
  return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

Cls classify(uint32_t cp) {
  if (cp < 0x80) {
    if (std::isalpha(static_cast<int>(cp))) return Cls::kLetter;
    if (std::isdigit(static_cast<int>(cp))) return Cls::kDigit;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0d)) return Cls::kSpace;
    return Cls::kOther;
  }
  if (is_unicode_space(cp)) return Cls::kSpace;
  if ((cp >= 0x80 && cp <= 0xbf) || (cp >= 0x2000 && cp <= 0x206f) ||
      (cp >= 0x3000 && cp <= 0x303f) || (cp >= 0xff00 && cp <= 0xff0f) || cp == 0xd7 || cp == 0xf7)
    return Cls::kOther;
  return Cls::kLetter;
}

struct Cp {
  uint32_t cp;
  size_t begin, end;  // byte range
  Cls cls;
};

bool is_newline(uint32_t cp) { return cp == '\r' || cp == '\n'; }

// Length (in code points) of a contraction at i, or 0.
size_t contraction(const std::vector<Cp>& c, size_t i, bool case_insensitive) {
  if (c[i].cp != '\'' || i + 1 >= c.size()) return 0;
  auto lower = [&](size_t k) -> uint32_t {
    if (k >= c.size()) return 0;
    uint32_t v = c[k].cp;
    return case_insensitive && v < 0x80 ? static_cast<uint32_t>(std::tolower(static_cast<int>(v)))
                                        : v;
  };
  uint32_t a = lower(i + 1), b = lower(i + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  return 0;
}

}  // namespace

std::vector<std::string_view> pretokenize(std::string_view text, PreTokenizer kind) {
  if (kind == PreTokenizer::kSmolLM) {  // as llama.cpp applies its two expressions in turn
    std::vector<std::string_view> out;
    size_t start = 0;
    auto flush = [&](size_t end) {
      if (end > start)
        for (std::string_view p : pretokenize(text.substr(start, end - start), PreTokenizer::kGpt2))
          out.push_back(p);
    };
    for (size_t i = 0; i < text.size(); ++i)
      if (text[i] >= '0' && text[i] <= '9') {
        flush(i);
        out.push_back(text.substr(i, 1));
        start = i + 1;
      }
    flush(text.size());
    return out;
  }
  const bool llama3 = kind != PreTokenizer::kGpt2;
  const size_t max_digits = kind == PreTokenizer::kQwen2 ? 1 : 3;
  std::vector<Cp> c;
  for (size_t i = 0; i < text.size();) {
    size_t b = i;
    uint32_t cp = utf8_next(text, i);
    c.push_back({cp, b, i, classify(cp)});
  }
  std::vector<std::string_view> out;
  const size_t n = c.size();
  size_t i = 0;
  auto emit = [&](size_t j) {  // emit code points [i, j)
    out.push_back(text.substr(c[i].begin, c[j - 1].end - c[i].begin));
    i = j;
  };
  auto run = [&](size_t j, Cls cls) {
    while (j < n && c[j].cls == cls) ++j;
    return j;
  };
  while (i < n) {
    if (size_t k = contraction(c, i, llama3)) {
      emit(i + k);
      continue;
    }
    const Cls cur = c[i].cls;
    // Letters, with one optional leading character.
    if (cur == Cls::kLetter) {
      emit(run(i, Cls::kLetter));
      continue;
    }
    bool prefix_ok = llama3 ? (cur != Cls::kDigit && !is_newline(c[i].cp)) : c[i].cp == ' ';
    if (prefix_ok && i + 1 < n && c[i + 1].cls == Cls::kLetter) {
      emit(run(i + 1, Cls::kLetter));
      continue;
    }
    // Digits: groups of at most three (Llama-3), or a run with an optional space (GPT-2).
    if (cur == Cls::kDigit) {
      size_t j = run(i, Cls::kDigit);
      if (llama3 && j - i > max_digits) j = i + max_digits;
      emit(j);
      continue;
    }
    if (!llama3 && c[i].cp == ' ' && i + 1 < n && c[i + 1].cls == Cls::kDigit) {
      emit(run(i + 1, Cls::kDigit));
      continue;
    }
    // Punctuation run with an optional leading space (and trailing newlines in Llama-3).
    size_t p = (c[i].cp == ' ' && i + 1 < n) ? i + 1 : i;
    if (c[p].cls == Cls::kOther) {
      size_t j = run(p, Cls::kOther);
      if (llama3)
        while (j < n && is_newline(c[j].cp)) ++j;
      emit(j);
      continue;
    }
    // Whitespace.
    size_t j = run(i, Cls::kSpace);
    if (llama3) {
      size_t last_nl = j;
      for (size_t k = i; k < j; ++k)
        if (is_newline(c[k].cp)) last_nl = k;
      if (last_nl != j) {
        emit(last_nl + 1);
        continue;
      }
    }
    if (j < n && j - i > 1) {
      emit(j - 1);  // \s+(?!\S): leave one space to prefix the next word
      continue;
    }
    emit(j);
  }
  return out;
}

namespace {
struct ByteMap {
  std::array<std::string, 256> to_uni;
  std::array<int, 512> from_uni;
  ByteMap() {
    from_uni.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + extra++);
      utf8_append(to_uni[b], cp);
      from_uni[cp] = b;
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}
}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return byte_map().to_uni[b]; }

int unicode_to_byte(uint32_t cp) { return cp < 512 ? byte_map().from_uni[cp] : -1; }

}  // namespace rme
