// server: CompletionText, what a client sees of a request's tokens — detokenized text released
// in whole UTF-8 characters, cut before the first stop string, with each token's
// log-probabilities released together with its text.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "scheduler/request_table.h"
#include "tokenizer/tokenizer.h"

namespace rme {

// One generated token as a client receives it (logprob/top filled when the request asked).
struct StreamToken {
  int id = -1;
  float logprob = 0.0f;
  std::vector<std::pair<int, float>> top;
};

// A released token: its bytes, where they start in the completion text, and its logprobs.
struct TextToken {
  int id = -1;
  int prev = -1;      // the token before (how alternatives to this one are spelled)
  std::string bytes;  // may be part of a UTF-8 character (byte tokens)
  size_t offset = 0;  // byte offset of `bytes` in the completion text
  float logprob = 0.0f;
  std::vector<std::pair<int, float>> top;
};

struct TextPiece {
  std::string text;
  std::vector<TextToken> tokens;
  bool empty() const { return text.empty() && tokens.empty(); }
};

// Length of the longest prefix of s that ends on a whole UTF-8 character (a trailing incomplete
// sequence is held back; invalid bytes are not waited on).
size_t utf8_complete_prefix(const std::string& s);

// One per request; not thread-safe: the handler makes it, then (as the request's TokenWatcher)
// only the serving loop's thread touches it until the request ends. Stop strings (at most 4,
// non-empty) are matched across token boundaries: text that could still begin a stop string is held
// back until it cannot, and a match ends the completion before the stop string. A token is released
// once all its bytes are (at a stop: once any byte before the stop is), so logprobs match the text.
class CompletionText : public TokenWatcher {
 public:
  CompletionText(const Tokenizer& tokenizer, int prev_token, std::vector<std::string> stops);

  TextPiece push(StreamToken token);  // after stopped(): ignored, empty
  // As the request table's watcher: push()es the token, keeping the released text for take().
  bool stops_after(const TokenEvent& event) override;
  TextPiece take();    // the text released since the last take()
  TextPiece finish();  // releases everything held (no stop can match any more)
  bool stopped() const { return stopped_; }
  int n_tokens() const { return n_tokens_; }  // tokens pushed before the stop, inclusive

 private:
  void release(size_t n, TextPiece* out);  // n bytes of pending_, and the tokens they complete

  const Tokenizer& tok_;
  int prev_;
  std::vector<std::string> stops_;
  std::string pending_;          // decoded, not yet released
  size_t released_ = 0;          // bytes released so far (pending_ starts here)
  std::vector<TextToken> held_;  // tokens with bytes not yet all released
  bool stopped_ = false;
  int n_tokens_ = 0;
  TextPiece released_text_;  // stops_after()'s output not yet taken
};

}  // namespace rme
