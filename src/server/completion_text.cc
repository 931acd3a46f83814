// server: CompletionText — UTF-8 hold-back, stop strings across token boundaries, token release.
#include "server/completion_text.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace rme {

size_t utf8_complete_prefix(const std::string& s) {
  // Look at most 4 bytes back for the lead byte of the last character.
  size_t i = s.size();
  for (int back = 1; back <= 4 && i > 0; ++back) {
    const unsigned char c = static_cast<unsigned char>(s[--i]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte
    return back < utf8_len(c) ? i : s.size();
  }
  return s.size();
}

CompletionText::CompletionText(const Tokenizer& tokenizer, int prev_token,
                               std::vector<std::string> stops)
    : tok_(tokenizer), prev_(prev_token), stops_(std::move(stops)) {}

void CompletionText::release(size_t n, TextPiece* out) {
  out->text += pending_.substr(0, n);
  pending_.erase(0, n);
  released_ += n;
  size_t k = 0;
  while (k < held_.size() && held_[k].offset + held_[k].bytes.size() <= released_) ++k;
  for (size_t i = 0; i < k; ++i) out->tokens.push_back(std::move(held_[i]));
  held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(k));
}

TextPiece CompletionText::push(StreamToken t) {
  TextPiece out;
  if (stopped_) return out;
  ++n_tokens_;
  std::string bytes = tok_.decode_token(prev_, t.id);
  held_.push_back({t.id, prev_, bytes, released_ + pending_.size(), t.logprob, std::move(t.top)});
  prev_ = t.id;
  pending_ += bytes;
  // The earliest complete stop string ends the completion.
  size_t cut = std::string::npos;
  for (const auto& s : stops_) cut = std::min(cut, pending_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    const size_t stop_at = released_ + cut;
    out.text = pending_.substr(0, cut);
    released_ += cut;
    pending_.clear();
    for (auto& h : held_)
      if (h.offset < stop_at) {
        if (h.offset + h.bytes.size() > stop_at) h.bytes.resize(stop_at - h.offset);
        out.tokens.push_back(std::move(h));
      }
    held_.clear();
    return out;
  }
  // Hold back whatever could still begin a stop string, and an incomplete character.
  size_t hold = 0;
  for (const auto& s : stops_)
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k)
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  release(std::min(utf8_complete_prefix(pending_), pending_.size() - hold), &out);
  return out;
}

bool CompletionText::stops_after(const TokenEvent& ev) {
  TextPiece p = push({ev.token, ev.logprob, ev.top});
  released_text_.text += p.text;
  for (auto& t : p.tokens) released_text_.tokens.push_back(std::move(t));
  return stopped_;
}

TextPiece CompletionText::take() { return std::exchange(released_text_, {}); }

TextPiece CompletionText::finish() {
  TextPiece out;
  release(pending_.size(), &out);
  for (auto& h : held_) out.tokens.push_back(std::move(h));
  held_.clear();
  return out;
}

}  // namespace rme
