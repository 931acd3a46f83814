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

}  // namespace rme
