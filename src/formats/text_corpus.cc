// formats: text extraction and token shards.
#include "formats/text_corpus.h"

#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/json.h"
#include "tokenizer/utf8.h"

namespace rme {
namespace {

using json = nlohmann::json;
constexpr char kShardMagic[8] = {'R', 'M', 'E', 'T', 'O', 'K', 'S', '1'};

std::string strip_cr(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i)
    if (!(s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n')) o += s[i];
  return o;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Result<std::vector<std::string>> read_documents(const std::string& path) {
  RME_ASSIGN_OR_RETURN(std::string text, read_file(path));
  if (!utf8_valid(text)) return corrupt(path + ": not valid UTF-8");
  text = strip_cr(text);
  std::vector<std::string> docs;
  if (!ends_with(path, ".jsonl")) {
    docs.push_back(std::move(text));
    return docs;
  }
  std::istringstream in(text);
  std::string line;
  for (int ln = 1; std::getline(in, line); ++ln) {
    if (line.empty()) continue;
    auto parsed = parse_json(line, path + ": line " + std::to_string(ln));
    if (!parsed.ok()) return parsed.status();
    const json& j = *parsed;
    if (!j.is_object())
      return corrupt(path + ": line " + std::to_string(ln) + " is not a JSON object");
    if (j.contains("question") && j["question"].is_string() && j.contains("answer") &&
        j["answer"].is_string()) {
      docs.push_back("Question: " + j["question"].get<std::string>() +
                     "\nAnswer: " + j["answer"].get<std::string>());
      continue;
    }
    std::string d;
    for (const auto& [k, v] : j.items())
      if (v.is_string()) d += (d.empty() ? "" : "\n") + v.get<std::string>();
    if (!d.empty()) docs.push_back(d);
  }
  return docs;
}

void split_tail(const std::vector<std::string>& docs, double valid_fraction,
                std::vector<std::string>& train, std::vector<std::string>& valid) {
  for (const std::string& d : docs) {
    size_t cut = static_cast<size_t>(d.size() * (1.0 - valid_fraction));
    cut = d.find('\n', cut);
    if (cut == std::string::npos || cut + 1 >= d.size()) {
      train.push_back(d);
      continue;
    }
    train.push_back(d.substr(0, cut + 1));
    valid.push_back(d.substr(cut + 1));
  }
}

Status write_token_shard(const std::string& path, const std::vector<int32_t>& tokens, int n_vocab) {
  const uint32_t bytes = n_vocab <= 65536 ? 2 : 4;
  std::string out(kShardMagic, 8);
  out.append(reinterpret_cast<const char*>(&bytes), 4);
  out.append(4, '\0');
  out.reserve(16 + tokens.size() * bytes);
  for (int32_t t : tokens) {
    if (bytes == 2) {
      uint16_t v = static_cast<uint16_t>(t);
      out.append(reinterpret_cast<const char*>(&v), 2);
    } else {
      out.append(reinterpret_cast<const char*>(&t), 4);
    }
  }
  return write_file_atomic(path, out);
}

Status write_manifest(const std::string& dir, const CorpusManifest& m) {
  auto shard = [](const ShardInfo& s) {
    return json{{"file", s.file},
                {"tokens", s.tokens},
                {"bytes", s.bytes},
                {"documents", s.documents},
                {"sources", s.sources}};
  };
  json j = {{"format", "rme-corpus-1"},
            {"tokenizer", m.tokenizer},
            {"n_vocab", m.n_vocab},
            {"bos", m.bos},
            {"domains", json::object()}};
  for (const auto& [name, s] : m.train) {
    j["domains"][name]["train"] = shard(s);
    if (m.valid.count(name)) j["domains"][name]["valid"] = shard(m.valid.at(name));
  }
  return write_file_atomic(dir + "/manifest.json", j.dump(2) + "\n");
}

Result<CorpusManifest> read_manifest(const std::string& dir) {
  const std::string path = dir + "/manifest.json";
  RME_ASSIGN_OR_RETURN(std::string text, read_file(path));
  RME_ASSIGN_OR_RETURN(json j, parse_json(text, path));
  if (!j.is_object() || !j.contains("format") || j["format"] != "rme-corpus-1")
    return corrupt(path + ": not an rme corpus manifest (format rme-corpus-1)");
  try {
    CorpusManifest m;
    m.tokenizer = j.value("tokenizer", "");
    m.n_vocab = j.at("n_vocab").get<int>();
    m.bos = j.value("bos", -1);
    auto shard = [](const json& s) {
      ShardInfo i;
      i.file = s.at("file").get<std::string>();
      i.tokens = s.at("tokens").get<int64_t>();
      i.bytes = s.at("bytes").get<int64_t>();
      i.documents = s.value("documents", int64_t{0});
      i.sources = s.value("sources", std::vector<std::string>{});
      return i;
    };
    for (const auto& [name, d] : j.at("domains").items()) {
      m.train[name] = shard(d.at("train"));
      if (d.contains("valid")) m.valid[name] = shard(d.at("valid"));
    }
    if (m.n_vocab <= 0 || m.train.empty()) return corrupt(path + ": no vocabulary or no domains");
    return m;
  } catch (const std::exception& e) {
    return corrupt(path + ": " + e.what());
  }
}

Result<TokenShard> TokenShard::open(const std::string& path, int n_vocab) {
  TokenShard s;
  RME_ASSIGN_OR_RETURN(s.file_, MappedFile::open(path));
  const size_t size = s.file_->size();
  if (size < 16 || std::memcmp(s.file_->data(), kShardMagic, 8) != 0)
    return corrupt(path + ": not an rme token shard (bad magic)");
  uint32_t bytes;
  std::memcpy(&bytes, s.file_->data() + 8, 4);
  if (bytes != 2 && bytes != 4) return corrupt(path + ": token width " + std::to_string(bytes));
  if ((size - 16) % bytes != 0) return corrupt(path + ": truncated (partial token at the end)");
  s.bytes_ = static_cast<int>(bytes);
  s.base_ = s.file_->data() + 16;
  s.n_ = static_cast<int64_t>((size - 16) / bytes);
  for (int64_t i = 0; i < s.n_; ++i)
    if (s[i] < 0 || s[i] >= n_vocab)
      return corrupt(path + ": token " + std::to_string(s[i]) + " at " + std::to_string(i) +
                     " outside the vocabulary of " + std::to_string(n_vocab));
  return s;
}

Result<std::vector<Domain>> open_domains(const std::string& dir, int seq_len,
                                         const std::map<std::string, double>& mixture,
                                         int& n_vocab) {
  RME_ASSIGN_OR_RETURN(CorpusManifest man, read_manifest(dir));
  n_vocab = man.n_vocab;
  for (const auto& [d, w] : mixture)
    if (!man.train.count(d))
      return invalid_argument("mixture names domain '" + d + "', not in the corpus");
  std::vector<Domain> domains;
  double wsum = 0;
  for (const auto& [name, info] : man.train) {
    Domain d;
    d.name = name;
    d.weight = mixture.empty() ? 1.0 : (mixture.count(name) ? mixture.at(name) : 0.0);
    wsum += d.weight;
    RME_ASSIGN_OR_RETURN(d.train, TokenShard::open(dir + "/" + info.file, man.n_vocab));
    if (d.train.size() <= seq_len + 1)
      return invalid_argument(name + ": fewer tokens than seq_len + 1");
    if (man.valid.count(name)) {
      const ShardInfo& v = man.valid.at(name);
      RME_ASSIGN_OR_RETURN(d.valid, TokenShard::open(dir + "/" + v.file, man.n_vocab));
      d.has_valid = d.valid.size() > seq_len + 1;
      d.bytes_per_token = v.tokens > 0 ? double(v.bytes) / v.tokens : 0;
    }
    domains.push_back(std::move(d));
  }
  if (!(wsum > 0)) return invalid_argument("every domain has mixture weight 0");
  return domains;
}

}  // namespace rme
