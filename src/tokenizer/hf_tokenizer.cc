// tokenizer: Hugging Face tokenizer.json / tokenizer_config.json / generation_config.json.
#include "tokenizer/hf_tokenizer.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/json.h"
#include "tokenizer/utf8.h"

namespace rme {
namespace {

using json = nlohmann::json;
const char* kMarker = "\xE2\x96\x81";

Result<json> parse_json_file(const std::string& path) {
  RME_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_json(text, path);
}

// True if any object nested in j has "type": type.
bool has_type(const json& j, const std::string& type) {
  if (j.is_object()) {
    auto it = j.find("type");
    if (it != j.end() && it->is_string() && it->get<std::string>() == type) return true;
    for (const auto& [k, v] : j.items())
      if (has_type(v, type)) return true;
  } else if (j.is_array()) {
    for (const auto& v : j)
      if (has_type(v, type)) return true;
  }
  return false;
}

// The first Split regex in the pre-tokenizer, or "".
std::string split_pattern(const json& j) {
  if (j.is_object()) {
    if (j.value("type", "") == "Split" && j.contains("pattern") && j["pattern"].is_object())
      return j["pattern"].value("Regex", "");
    for (const auto& [k, v] : j.items())
      if (auto s = split_pattern(v); !s.empty()) return s;
  } else if (j.is_array()) {
    for (const auto& v : j)
      if (auto s = split_pattern(v); !s.empty()) return s;
  }
  return "";
}

Result<BpeVocab> parse_tokenizer_json(const json& j, const std::string& path) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    return corrupt(path + ": no \"model\" object");
  const json& m = j["model"];
  std::string type = m.value("type", "BPE");
  if (type != "BPE")
    return unsupported(path + ": tokenizer model type '" + type + "' (rme reads BPE)");
  if (!m.contains("vocab") || !m["vocab"].is_object())
    return corrupt(path + ": model.vocab is missing or not an object");
  std::map<int, std::string> by_id;
  std::map<int, bool> special_ids;
  for (const auto& [piece, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (1 << 24))
      return corrupt(path + ": model.vocab['" + piece + "'] is not an id in [0, 2^24]");
    by_id[id.get<int>()] = piece;
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& t : j["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
          !t.contains("content") || !t["content"].is_string())
        return corrupt(path + ": added_tokens entry without integer id and string content");
      int64_t id = t["id"].get<int64_t>();
      if (id < 0 || id > (1 << 24)) return corrupt(path + ": added token id out of range");
      by_id[static_cast<int>(id)] = t["content"].get<std::string>();
      special_ids[static_cast<int>(id)] = t.value("special", false);
    }
  }
  if (by_id.empty()) return corrupt(path + ": empty vocabulary");
  const int n = by_id.rbegin()->first + 1;
  if (static_cast<size_t>(n) != by_id.size())
    return corrupt(path + ": token ids are not contiguous (" + std::to_string(by_id.size()) +
                   " tokens, largest id " + std::to_string(n - 1) + ")");
  BpeVocab v;
  v.tokens.resize(n);
  v.types.assign(n, TokenType::kNormal);
  for (auto& [id, piece] : by_id) v.tokens[id] = piece;
  for (auto& [id, special] : special_ids)
    v.types[id] = special ? TokenType::kControl : TokenType::kUserDefined;

  const json pre = j.value("pre_tokenizer", json());
  if (has_type(pre, "ByteLevel") || has_type(j.value("decoder", json()), "ByteLevel")) {
    v.mode = BpeVocab::Mode::kByteLevel;
    std::string pat = split_pattern(pre);
    if (has_type(pre, "Digits") && pat.empty()) {  // SmolLM: Digits(individual) + ByteLevel
      v.pre_tokenizer = PreTokenizer::kSmolLM;
    } else if (pat.find("\\p{N}{1,3}") != std::string::npos) {
      v.pre_tokenizer = PreTokenizer::kLlama3;
    } else if (pat.find("\\p{N}|") != std::string::npos) {
      v.pre_tokenizer = PreTokenizer::kQwen2;
    } else {
      v.pre_tokenizer = PreTokenizer::kGpt2;
    }
    v.ignore_merges = m.value("ignore_merges", false);
  } else {
    v.mode = BpeVocab::Mode::kSentencePiece;
    v.space_marker = kMarker;
    const json norm = j.value("normalizer", json());
    bool prepend = has_type(norm, "Prepend");
    if (pre.is_object() && pre.value("type", "") == "Metaspace")
      prepend =
          pre.value("prepend_scheme", "always") != "never" && pre.value("add_prefix_space", true);
    v.add_space_prefix = prepend;
  }
  if (m.contains("merges") && m["merges"].is_array()) {
    for (const auto& mg : m["merges"]) {
      if (mg.is_string()) {
        const std::string s = mg.get<std::string>();
        size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) return corrupt(path + ": merge '" + s + "' has no space");
        v.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
        v.merges.emplace_back(mg[0].get<std::string>(), mg[1].get<std::string>());
      } else {
        return corrupt(path + ": a merge is neither \"a b\" nor [\"a\", \"b\"]");
      }
    }
  }
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    auto unk = m["unk_token"].get<std::string>();
    for (int i = 0; i < n; ++i)
      if (v.tokens[i] == unk) {
        v.special.unk = i;
        v.types[i] = TokenType::kUnknown;
      }
  }
  return v;
}

// Merges equivalent to SentencePiece's score-ordered merging: every split of a token into two
// tokens, ranked by the merged token's score.
std::vector<std::pair<std::string, std::string>> merges_from_scores(const BpeVocab& v) {
  std::unordered_map<std::string, int> index;
  for (size_t i = 0; i < v.tokens.size(); ++i) index.emplace(v.tokens[i], static_cast<int>(i));
  struct M {
    float score;
    int id;
    size_t split;
  };
  std::vector<M> ms;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] != TokenType::kNormal && v.types[i] != TokenType::kUserDefined) continue;
    const std::string& s = v.tokens[i];
    for (size_t k = static_cast<size_t>(utf8_len(static_cast<unsigned char>(s[0]))); k < s.size();
         k += static_cast<size_t>(utf8_len(static_cast<unsigned char>(s[k])))) {
      if (index.count(s.substr(0, k)) && index.count(s.substr(k)))
        ms.push_back({v.scores[i], static_cast<int>(i), k});
    }
  }
  std::stable_sort(ms.begin(), ms.end(), [](const M& a, const M& b) { return a.score > b.score; });
  std::vector<std::pair<std::string, std::string>> out;
  for (const M& m : ms)
    out.emplace_back(v.tokens[m.id].substr(0, m.split), v.tokens[m.id].substr(m.split));
  return out;
}

int find_token(const Tokenizer& tok, const json& spec) {
  std::string text;
  if (spec.is_string()) {
    text = spec.get<std::string>();
  } else if (spec.is_object() && spec.contains("content") && spec["content"].is_string()) {
    text = spec["content"].get<std::string>();
  } else if (spec.is_null()) {
    return -2;
  } else {
    return -3;  // neither a string nor {"content": string}
  }
  for (int i = 0; i < tok.n_vocab(); ++i)
    if (tok.token_text(i) == text) return i;
  return -1;
}

SentencePieceLoader g_sentencepiece_loader = nullptr;

}  // namespace

void set_sentencepiece_loader(SentencePieceLoader loader) { g_sentencepiece_loader = loader; }

Result<BpeVocab> read_tokenizer_json(const std::string& path) {
  RME_ASSIGN_OR_RETURN(json j, parse_json_file(path));
  try {
    return parse_tokenizer_json(j, path);
  } catch (const std::exception& e) {  // nlohmann type errors on unexpected shapes
    return corrupt(path + ": " + e.what());
  }
}

Status write_tokenizer_json(const BpeVocab& vocab, const std::string& path) {
  json j;
  j["version"] = "1.0";
  json added = json::array();
  json vocab_obj = json::object();
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    vocab_obj[vocab.tokens[i]] = i;
    TokenType t = vocab.types.empty() ? TokenType::kNormal : vocab.types[i];
    if (t == TokenType::kControl || t == TokenType::kUserDefined)
      added.push_back({{"id", i},
                       {"content", vocab.tokens[i]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", t == TokenType::kControl}});
  }
  j["added_tokens"] = added;
  auto merges = vocab.merges.empty() ? merges_from_scores(vocab) : vocab.merges;
  json jm = json::array();
  for (auto& [a, b] : merges) jm.push_back({a, b});
  json model = {{"type", "BPE"}, {"vocab", vocab_obj}, {"merges", jm}};
  if (vocab.mode == BpeVocab::Mode::kByteLevel) {
    static const char* kPatterns[] = {
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
    j["normalizer"] = nullptr;
    if (vocab.pre_tokenizer == PreTokenizer::kSmolLM)  // as SmolLM ships it
      j["pre_tokenizer"] = {{"type", "Sequence"},
                            {"pretokenizers",
                             {{{"type", "Digits"}, {"individual_digits", true}},
                              {{"type", "ByteLevel"},
                               {"add_prefix_space", false},
                               {"trim_offsets", true},
                               {"use_regex", true}}}}};
    else
      j["pre_tokenizer"] = {
          {"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern", {{"Regex", kPatterns[static_cast<int>(vocab.pre_tokenizer)]}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            {{"type", "ByteLevel"},
             {"add_prefix_space", false},
             {"trim_offsets", true},
             {"use_regex", false}}}}};
    j["decoder"] = {{"type", "ByteLevel"},
                    {"add_prefix_space", true},
                    {"trim_offsets", true},
                    {"use_regex", true}};
    model["byte_fallback"] = false;
    model["ignore_merges"] = vocab.ignore_merges;
  } else {
    json norms = json::array();
    if (vocab.add_space_prefix) norms.push_back({{"type", "Prepend"}, {"prepend", kMarker}});
    norms.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMarker}});
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", norms}};
    j["pre_tokenizer"] = nullptr;
    j["decoder"] = {{"type", "Sequence"},
                    {"decoders",
                     {{{"type", "Replace"}, {"pattern", {{"String", kMarker}}}, {"content", " "}},
                      {{"type", "ByteFallback"}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
    model["byte_fallback"] = true;
    model["fuse_unk"] = true;
    if (vocab.special.unk >= 0) model["unk_token"] = vocab.tokens[vocab.special.unk];
  }
  j["model"] = model;
  return write_file_atomic(path, j.dump(1, ' ', false, json::error_handler_t::replace));
}

Status apply_hf_special_tokens(const std::string& dir, const Tokenizer& tok,
                               SpecialTokens& special) {
  try {
    const std::string cfg_path = dir + "/tokenizer_config.json";
    if (file_exists(cfg_path)) {
      RME_ASSIGN_OR_RETURN(json cfg, parse_json_file(cfg_path));
      if (!cfg.is_object()) return corrupt(cfg_path + ": top level is not an object");
      for (auto [key, slot] : {std::pair<const char*, int*>{"bos_token", &special.bos},
                               {"eos_token", &special.eos},
                               {"unk_token", &special.unk},
                               {"pad_token", &special.pad}}) {
        if (!cfg.contains(key)) continue;
        int id = find_token(tok, cfg[key]);
        if (id == -1)
          return corrupt(cfg_path + ": " + key + " names a token not in the vocabulary");
        if (id == -3)
          return corrupt(cfg_path + ": '" + key +
                         "' must be a string, {\"content\": string} or null");
        *slot = id;  // -2 (null) clears it below
        if (id == -2) *slot = -1;
      }
      RME_ASSIGN_OR_RETURN(special.add_bos,
                           JsonFields(cfg, cfg_path).boolean("add_bos_token", special.add_bos));
    }
    const std::string gen_path = dir + "/generation_config.json";
    if (file_exists(gen_path)) {
      RME_ASSIGN_OR_RETURN(json gen, parse_json_file(gen_path));
      if (!gen.is_object()) return corrupt(gen_path + ": top level is not an object");
      const JsonFields f(gen, gen_path);
      const int64_t last = tok.n_vocab() - 1;
      if (f.has("bos_token_id")) {
        RME_ASSIGN_OR_RETURN(int64_t bos, f.required_integer("bos_token_id", 0, last));
        special.bos = static_cast<int>(bos);
      }
      if (f.has("eos_token_id")) {  // one id or a list (the first is the EOS, the rest stop too)
        std::vector<int> ids;
        if (gen["eos_token_id"].is_array()) {
          RME_ASSIGN_OR_RETURN(ids, f.int_array("eos_token_id", 0, last));
        } else {
          RME_ASSIGN_OR_RETURN(int64_t eos, f.required_integer("eos_token_id", 0, last));
          ids.push_back(static_cast<int>(eos));
        }
        if (!ids.empty()) {
          special.eos = ids[0];
          special.extra_eos.assign(ids.begin() + 1, ids.end());
        }
      }
    }
  } catch (const std::exception& e) {
    return corrupt(dir + ": special tokens: " + e.what());
  }
  return Status::Ok();
}

Result<std::unique_ptr<Tokenizer>> load_hf_tokenizer(const std::string& dir) {
  std::unique_ptr<Tokenizer> tok;
  if (file_exists(dir + "/tokenizer.json")) {
    RME_ASSIGN_OR_RETURN(BpeVocab v, read_tokenizer_json(dir + "/tokenizer.json"));
    // Default BOS for SentencePiece-style vocabularies: "<s>" if present.
    if (v.mode == BpeVocab::Mode::kSentencePiece) {
      for (size_t i = 0; i < v.tokens.size(); ++i) {
        if (v.tokens[i] == "<s>") v.special.bos = static_cast<int>(i);
        if (v.tokens[i] == "</s>") v.special.eos = static_cast<int>(i);
      }
    } else {
      v.special.add_bos = false;  // byte-level vocabularies name their BOS in the config
    }
    auto r = BpeTokenizer::create(std::move(v));
    if (!r.ok()) return r.status().with_context(dir + "/tokenizer.json");
    tok = std::move(r).value();
  } else if (file_exists(dir + "/tokenizer.model")) {
    if (g_sentencepiece_loader == nullptr)
      return unsupported(dir + "/tokenizer.model: this binary is built without libsentencepiece");
    RME_ASSIGN_OR_RETURN(tok, g_sentencepiece_loader(dir + "/tokenizer.model"));
  } else {
    return not_found(dir + ": no tokenizer.json or tokenizer.model");
  }
  SpecialTokens s = tok->special();
  const bool had_bos_flag = file_exists(dir + "/tokenizer_config.json");
  RME_RETURN_IF_ERROR(apply_hf_special_tokens(dir, *tok, s));
  // Byte-level models with a BOS in their config and no explicit add_bos_token (Llama-3) add it.
  if (had_bos_flag && !s.add_bos && s.bos >= 0) {
    auto cfg = parse_json_file(dir + "/tokenizer_config.json");
    if (cfg.ok() && cfg->is_object() && !cfg->contains("add_bos_token")) s.add_bos = true;
  }
  tok->set_special(s);
  return tok;
}

}  // namespace rme
