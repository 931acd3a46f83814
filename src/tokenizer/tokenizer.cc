// tokenizer: shared Tokenizer helpers.
#include "tokenizer/tokenizer.h"

#include <algorithm>

namespace rme {

bool Tokenizer::is_eos(int id) const {
  return id == special_.eos || std::find(special_.extra_eos.begin(), special_.extra_eos.end(),
                                         id) != special_.extra_eos.end();
}

std::vector<int> Tokenizer::stop_ids() const {
  std::vector<int> ids;
  for (int id = 0; id < n_vocab(); ++id)
    if (is_eos(id) || id == special_.bos) ids.push_back(id);
  return ids;
}

std::string Tokenizer::decode(std::span<const int> ids) const {
  std::string out;
  int prev = -1;
  for (int id : ids) {
    out += decode_token(prev, id);
    prev = id;
  }
  return out;
}

size_t Tokenizer::max_token_bytes() const {
  if (max_token_bytes_ > 0) return max_token_bytes_;
  size_t most = 4;
  for (int id = 0; id < n_vocab(); ++id) most = std::max(most, token_text(id).size());
  return most;
}

std::optional<std::vector<int>> Tokenizer::encode_at_most(std::string_view text, bool add_bos,
                                                          size_t max_tokens) const {
  // ceil(bytes / max_token_bytes) tokens at least, BOS aside: past the limit without reading.
  if (text.size() > max_tokens * max_token_bytes()) return std::nullopt;
  std::vector<int> ids = encode_until(text, add_bos, max_tokens);
  if (ids.size() > max_tokens) return std::nullopt;
  return ids;
}

}  // namespace rme
