// tokenizer: llama2.c tokenizer.bin reader with bounds checks on every field.
#include "tokenizer/llama2c_vocab.h"

#include <cstring>

#include "core/file.h"

namespace rme {

Result<BpeVocab> read_llama2c_vocab(const std::string& path, int n_vocab) {
  RME_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  size_t off = 0;
  auto read_i32 = [&](int32_t& v, const std::string& what) -> Status {
    if (off + 4 > bytes.size())
      return corrupt(path + ": truncated at byte " + std::to_string(off) + " reading " + what);
    std::memcpy(&v, bytes.data() + off, 4);
    off += 4;
    return Status::Ok();
  };
  int32_t max_len = 0;
  RME_RETURN_IF_ERROR(read_i32(max_len, "max_token_length"));
  if (max_len <= 0 || max_len > 1 << 16)
    return corrupt(path + ": max_token_length " + std::to_string(max_len) +
                   " out of range (1..65536)");
  BpeVocab v;
  v.space_marker = " ";  // llama2.c's exporter replaced "▁" with spaces
  v.add_space_prefix = true;
  v.special.bos = 1;
  v.special.eos = 2;
  v.special.unk = 0;
  for (int i = 0; n_vocab < 0 ? off < bytes.size() : i < n_vocab; ++i) {
    const std::string what = "token " + std::to_string(i);
    int32_t score_bits, len;
    RME_RETURN_IF_ERROR(read_i32(score_bits, what + " score"));
    RME_RETURN_IF_ERROR(read_i32(len, what + " length"));
    if (len < 0 || len > max_len)
      return corrupt(path + ": " + what + " length " + std::to_string(len) +
                     " outside [0, max_token_length=" + std::to_string(max_len) + "]");
    if (off + static_cast<size_t>(len) > bytes.size())
      return corrupt(path + ": truncated in " + what + " text (needs " + std::to_string(len) +
                     " bytes at offset " + std::to_string(off) + ", file has " +
                     std::to_string(bytes.size()) + ")");
    float score;
    std::memcpy(&score, &score_bits, 4);
    v.scores.push_back(score);
    v.tokens.emplace_back(bytes.data() + off, static_cast<size_t>(len));
    off += static_cast<size_t>(len);
  }
  if (v.tokens.size() < 3)
    return corrupt(path + ": only " + std::to_string(v.tokens.size()) +
                   " tokens; need at least <unk>, BOS and EOS");
  return v;
}

}  // namespace rme
