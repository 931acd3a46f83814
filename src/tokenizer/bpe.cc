// tokenizer: BPE encode (heap-ordered merges, O(n log n)) and decode.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "tokenizer/utf8.h"

namespace rme {
namespace {

uint64_t pair_key(int a, int b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

bool parse_byte_token(const std::string& s, int& byte) {
  if (s.size() != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return false;
  unsigned v = 0;
  if (std::sscanf(s.c_str() + 3, "%2x", &v) != 1) return false;
  byte = static_cast<int>(v);
  return true;
}

}  // namespace

Result<std::unique_ptr<BpeTokenizer>> BpeTokenizer::create(BpeVocab vocab) {
  const size_t n = vocab.tokens.size();
  if (n == 0) return invalid_argument("tokenizer: empty vocabulary");
  if (!vocab.scores.empty() && vocab.scores.size() != n)
    return corrupt("tokenizer: " + std::to_string(vocab.scores.size()) + " scores for " +
                   std::to_string(n) + " tokens");
  if (!vocab.types.empty() && vocab.types.size() != n)
    return corrupt("tokenizer: " + std::to_string(vocab.types.size()) + " token types for " +
                   std::to_string(n) + " tokens");
  if (vocab.scores.empty()) vocab.scores.assign(n, 0.0f);
  const bool detect_types = vocab.types.empty();
  if (detect_types) vocab.types.assign(n, TokenType::kNormal);
  auto tok = std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(vocab)));
  BpeVocab& v = tok->vocab_;
  std::fill(std::begin(tok->byte_token_), std::end(tok->byte_token_), -1);
  tok->index_.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    tok->index_.emplace(v.tokens[i], static_cast<int>(i));  // first occurrence wins
    int byte;
    const bool spm = v.mode == BpeVocab::Mode::kSentencePiece;
    if (parse_byte_token(v.tokens[i], byte) &&
        (v.types[i] == TokenType::kByte || (spm && v.types[i] == TokenType::kNormal))) {
      v.types[i] = TokenType::kByte;
      if (tok->byte_token_[byte] < 0) tok->byte_token_[byte] = static_cast<int>(i);
    }
  }
  auto check_id = [&](int id, const char* what) -> Status {
    if (id < -1 || id >= static_cast<int>(n))
      return corrupt(std::string("tokenizer: ") + what + " id " + std::to_string(id) +
                     " out of range [0, " + std::to_string(n) + ")");
    return Status::Ok();
  };
  RME_RETURN_IF_ERROR(check_id(v.special.bos, "bos"));
  RME_RETURN_IF_ERROR(check_id(v.special.eos, "eos"));
  RME_RETURN_IF_ERROR(check_id(v.special.unk, "unk"));
  RME_RETURN_IF_ERROR(check_id(v.special.pad, "pad"));
  for (int id : v.special.extra_eos) RME_RETURN_IF_ERROR(check_id(id, "eos"));
  if (detect_types) {
    for (int id : {v.special.bos, v.special.eos})
      if (id >= 0) v.types[id] = TokenType::kControl;
    if (v.special.unk >= 0) v.types[v.special.unk] = TokenType::kUnknown;
  }
  for (size_t r = 0; r < v.merges.size(); ++r) {
    const auto& [a, b] = v.merges[r];
    auto ia = tok->index_.find(a), ib = tok->index_.find(b), im = tok->index_.find(a + b);
    if (ia == tok->index_.end() || ib == tok->index_.end() || im == tok->index_.end())
      return corrupt("tokenizer: merge " + std::to_string(r) + " ('" + a + "' '" + b +
                     "') names a token not in the vocabulary");
    tok->merge_rank_.emplace(pair_key(ia->second, ib->second),
                             std::make_pair(static_cast<int>(r), im->second));
  }
  // Byte-level vocabularies (Llama-3, Qwen2) match control and user-defined tokens written like
  // "<|eot_id|>" verbatim in text, as HF does. SentencePiece-style ones do not, as
  // libsentencepiece does not: "<s>" typed in a prompt stays text.
  for (size_t i = 0; i < n && v.mode == BpeVocab::Mode::kByteLevel; ++i) {
    const std::string& s = v.tokens[i];
    if ((v.types[i] == TokenType::kControl || v.types[i] == TokenType::kUserDefined) &&
        s.size() > 2 && s.front() == '<' && s.back() == '>')
      tok->specials_.emplace_back(s, static_cast<int>(i));
  }
  std::sort(tok->specials_.begin(), tok->specials_.end(),
            [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
  tok->special_ = v.special;
  tok->word_split_ = v.mode == BpeVocab::Mode::kSentencePiece && !v.space_marker.empty();
  for (size_t i = 0; i < n && tok->word_split_; ++i) {
    const std::string& s = v.tokens[i];
    const std::string& m = v.space_marker;
    for (size_t at = s.find(m, 1); at != std::string::npos; at = s.find(m, at + 1))
      if (at < m.size() || s.compare(at - m.size(), m.size(), m) != 0) {
        tok->word_split_ = false;  // e.g. "a▁": a merge could join two words
        break;
      }
  }
  tok->cache_max_token_bytes();
  return tok;
}

std::string BpeTokenizer::kind() const {
  if (vocab_.mode == BpeVocab::Mode::kByteLevel)
    return vocab_.pre_tokenizer == PreTokenizer::kGpt2     ? "byte-level-bpe (gpt2 split)"
           : vocab_.pre_tokenizer == PreTokenizer::kQwen2  ? "byte-level-bpe (qwen2 split)"
           : vocab_.pre_tokenizer == PreTokenizer::kSmolLM ? "byte-level-bpe (smollm split)"
                                                           : "byte-level-bpe (llama3 split)";
  return vocab_.merges.empty() ? "sentencepiece-bpe (scores)" : "sentencepiece-bpe (merges)";
}

std::vector<float> spm_scores(const BpeVocab& v) {
  if (v.merges.empty()) return v.scores;  // scores are what ranks this vocabulary's merges
  const float lowest = -static_cast<float>(v.merges.size() + 1);
  std::vector<float> scores(v.tokens.size(), lowest);
  std::unordered_map<std::string, int> index;
  for (size_t i = 0; i < v.tokens.size(); ++i) index.emplace(v.tokens[i], static_cast<int>(i));
  for (size_t i = 0; i < v.types.size() && i < scores.size(); ++i)
    if (v.types[i] == TokenType::kControl || v.types[i] == TokenType::kUnknown ||
        v.types[i] == TokenType::kUserDefined)
      scores[i] = 0;
  for (size_t r = v.merges.size(); r-- > 0;) {  // the first making wins: walk back to front
    auto it = index.find(v.merges[r].first + v.merges[r].second);
    if (it != index.end()) scores[it->second] = -static_cast<float>(r + 1);
  }
  return scores;
}

BpeVocab BpeTokenizer::export_vocab() const {
  BpeVocab v = vocab_;
  static const std::string kMarker = "\xE2\x96\x81";
  if (v.mode != BpeVocab::Mode::kSentencePiece || v.space_marker == kMarker) return v;
  auto fix = [&](std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == ' ') {
        o += kMarker;
      } else {
        o += c;
      }
    }
    s = std::move(o);
  };
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.types[i] == TokenType::kNormal || v.types[i] == TokenType::kUserDefined) fix(v.tokens[i]);
  for (auto& [a, b] : v.merges) {
    fix(a);
    fix(b);
  }
  v.space_marker = kMarker;
  return v;
}

int BpeTokenizer::find(std::string_view text) const {
  auto it = index_.find(std::string(text));
  return it == index_.end() ? -1 : it->second;
}

bool BpeTokenizer::pair_priority(int a, int b, float& priority, int& merged) const {
  if (!vocab_.merges.empty()) {
    auto it = merge_rank_.find(pair_key(a, b));
    if (it == merge_rank_.end()) return false;
    priority = -static_cast<float>(it->second.first);
    merged = it->second.second;
    return true;
  }
  auto it = index_.find(vocab_.tokens[a] + vocab_.tokens[b]);
  if (it == index_.end()) return false;
  priority = vocab_.scores[it->second];
  merged = it->second;
  return true;
}

void BpeTokenizer::merge(std::vector<int>& ids) const {
  const int n = static_cast<int>(ids.size());
  if (n < 2) return;
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    float priority;
    int left, right, left_id, right_id, merged;
    // Highest priority first; leftmost on ties (what the greedy rescanning reference does).
    bool operator<(const Cand& o) const {
      return priority != o.priority ? priority < o.priority : left > o.left;
    }
  };
  std::priority_queue<Cand> heap;
  auto push = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    float p;
    int m;
    if (pair_priority(ids[l], ids[r], p, m)) heap.push({p, l, r, ids[l], ids[r], m});
  };
  for (int i = 0; i + 1 < n; ++i) push(i, i + 1);
  std::vector<char> alive(n, 1);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    // Stale if either side was merged away or changed since the candidate was pushed.
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right || ids[c.left] != c.left_id ||
        ids[c.right] != c.right_id)
      continue;
    ids[c.left] = c.merged;
    alive[c.right] = 0;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    push(prev[c.left], c.left);
    push(c.left, next[c.left]);
  }
  int w = 0;
  for (int i = 0; i < n; ++i)
    if (alive[i]) ids[w++] = ids[i];
  ids.resize(w);
}

void BpeTokenizer::encode_plain(std::string_view text, bool at_start, size_t max_tokens,
                                std::vector<int>& out) const {
  if (text.empty()) return;
  std::vector<int> ids;
  if (vocab_.mode == BpeVocab::Mode::kByteLevel) {
    for (std::string_view word : pretokenize(text, vocab_.pre_tokenizer)) {
      if (out.size() > max_tokens) return;
      ids.clear();
      if (vocab_.ignore_merges) {
        std::string mapped;
        for (unsigned char ch : word) mapped += byte_to_unicode(ch);
        if (int id = find(mapped); id >= 0) {
          out.push_back(id);
          continue;
        }
      }
      for (unsigned char ch : word) {
        int id = find(byte_to_unicode(ch));
        if (id >= 0) {
          ids.push_back(id);
        } else if (special_.unk >= 0) {
          ids.push_back(special_.unk);
        }
      }
      merge(ids);
      out.insert(out.end(), ids.begin(), ids.end());
    }
    return;
  }
  // SentencePiece style: spaces -> marker, optional dummy prefix, per-character symbols.
  std::string s;
  s.reserve(text.size() + 8);
  if (at_start && vocab_.add_space_prefix) s += vocab_.space_marker;
  for (char ch : text) {
    if (ch == ' ') {
      s += vocab_.space_marker;
    } else {
      s += ch;
    }
  }
  const std::string& m = vocab_.space_marker;
  for (size_t i = 0; i < s.size();) {
    // A word boundary: a marker after another character. Merge what came before on its own.
    if (word_split_ && i > 0 && !ids.empty() && s.compare(i, m.size(), m) == 0 &&
        (i < m.size() || s.compare(i - m.size(), m.size(), m) != 0)) {
      merge(ids);
      out.insert(out.end(), ids.begin(), ids.end());
      ids.clear();
      if (out.size() > max_tokens) return;
    }
    size_t len = static_cast<size_t>(utf8_len(static_cast<unsigned char>(s[i])));
    len = std::min(len, s.size() - i);
    int id = find(std::string_view(s).substr(i, len));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (size_t k = 0; k < len; ++k) {
        int b = byte_token_[static_cast<unsigned char>(s[i + k])];
        if (b >= 0) {
          ids.push_back(b);
        } else if (special_.unk >= 0) {
          ids.push_back(special_.unk);
          break;
        }
      }
    }
    i += len;
  }
  merge(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

std::vector<int> BpeTokenizer::encode_until(std::string_view text, bool add_bos,
                                            size_t max_tokens) const {
  std::vector<int> out;
  if (add_bos && special_.bos >= 0) out.push_back(special_.bos);
  size_t start = 0, i = 0;
  bool at_start = true;
  while (i < text.size() && out.size() <= max_tokens) {
    int matched = -1;
    size_t matched_len = 0;
    if (text[i] == '<') {
      for (const auto& [s, id] : specials_) {
        if (text.compare(i, s.size(), s) == 0) {
          matched = id;
          matched_len = s.size();
          break;
        }
      }
    }
    if (matched < 0) {
      ++i;
      continue;
    }
    encode_plain(text.substr(start, i - start), at_start, max_tokens, out);
    out.push_back(matched);
    at_start = false;
    i += matched_len;
    start = i;
  }
  if (out.size() <= max_tokens)
    encode_plain(text.substr(start), at_start && start == 0, max_tokens, out);
  return out;
}

std::string BpeTokenizer::decode_token(int prev, int token) const {
  if (token < 0 || token >= n_vocab()) return {};
  const std::string& piece = vocab_.tokens[token];
  switch (vocab_.types[token]) {
    case TokenType::kControl:
    case TokenType::kUnused:
      return {};
    case TokenType::kByte: {
      int b;
      if (parse_byte_token(piece, b)) return std::string(1, static_cast<char>(b));
      return {};
    }
    default:
      break;
  }
  if (vocab_.mode == BpeVocab::Mode::kByteLevel) {
    std::string out;
    for (size_t i = 0; i < piece.size();) {
      uint32_t cp = utf8_next(piece, i);
      int b = unicode_to_byte(cp);
      if (b >= 0) {
        out += static_cast<char>(b);
      } else {
        utf8_append(out, cp);  // added tokens store plain text
      }
    }
    return out;
  }
  std::string out;
  const std::string& m = vocab_.space_marker;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, m.size(), m) == 0) {
      out += ' ';
      i += m.size();
    } else {
      out += piece[i++];
    }
  }
  // SentencePiece drops the dummy-prefix space of the first piece.
  bool first = prev < 0 || prev == special_.bos;
  if (first && vocab_.add_space_prefix && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace rme
