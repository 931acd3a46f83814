// formats: reading training/evaluation text from the files people have (plain text, JSON lines)
// into documents, and the token shard format rme corpus writes and the trainer reads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/status.h"

namespace rme {

// Documents of a file: a .jsonl file gives one per record ("Question: …\nAnswer: …" when the
// record has question/answer fields, else its string fields joined by newlines); any other file
// is one document. CRLF becomes LF. Fails on unreadable files, bad JSON or invalid UTF-8.
Result<std::vector<std::string>> read_documents(const std::string& path);

// Splits documents into (train, valid) at a line boundary so that about `valid_fraction` of the
// bytes of each document end up in valid (the tail of each).
void split_tail(const std::vector<std::string>& docs, double valid_fraction,
                std::vector<std::string>& train, std::vector<std::string>& valid);

// One split of one domain: a file of little-endian token ids (u16 or u32) after a 16-byte header
// ("RMETOKS1", u32 bytes per token, u32 reserved). Documents start with BOS.
struct ShardInfo {
  std::string file;  // relative to the corpus directory
  int64_t tokens = 0;
  int64_t bytes = 0;  // UTF-8 bytes of the text the tokens encode
  int64_t documents = 0;
  std::vector<std::string> sources;
};

struct CorpusManifest {
  std::string tokenizer;  // file name inside the corpus directory
  int n_vocab = 0;
  int bos = -1;
  std::map<std::string, ShardInfo> train, valid;  // by domain
};

Status write_token_shard(const std::string& path, const std::vector<int32_t>& tokens, int n_vocab);
Status write_manifest(const std::string& dir, const CorpusManifest& m);
Result<CorpusManifest> read_manifest(const std::string& dir);

// A mapped token shard. Immutable; thread-safe.
class TokenShard {
 public:
  static Result<TokenShard> open(const std::string& path, int n_vocab);
  int64_t size() const { return n_; }
  int32_t operator[](int64_t i) const {
    return bytes_ == 2 ? reinterpret_cast<const uint16_t*>(base_)[i]
                       : reinterpret_cast<const int32_t*>(base_)[i];
  }

 private:
  std::shared_ptr<MappedFile> file_;
  const uint8_t* base_ = nullptr;
  int64_t n_ = 0;
  int bytes_ = 2;
};

// One domain of an `rme corpus` directory, opened for training: its mapped shards and its share
// of the mixture. Immutable after open_domains; thread-safe to read.
struct Domain {
  std::string name;
  double weight = 0;
  TokenShard train, valid;
  bool has_valid = false;
  double bytes_per_token = 0;  // of the validation split
};

// Opens every domain of an `rme corpus` directory; weights from `mixture` (empty = all 1). Each
// train shard must hold more than seq_len + 1 tokens. Sets n_vocab.
Result<std::vector<Domain>> open_domains(const std::string& corpus_dir, int seq_len,
                                         const std::map<std::string, double>& mixture,
                                         int& n_vocab);

}  // namespace rme
