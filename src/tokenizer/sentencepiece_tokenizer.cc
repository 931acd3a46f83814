// tokenizer: libsentencepiece adapter.
#include "tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <cstdio>

#include "core/file.h"
#include "tokenizer/hf_tokenizer.h"

namespace rme {

SentencePieceTokenizer::SentencePieceTokenizer()
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

Result<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::load(
    const std::string& path) {
  RME_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  auto tok = std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer());
  auto st = tok->sp_->LoadFromSerializedProto(bytes);
  if (!st.ok()) return corrupt(path + ": not a SentencePiece model: " + st.ToString());
  const int n = tok->sp_->GetPieceSize();
  if (n <= 0) return corrupt(path + ": SentencePiece model has no pieces");
  for (int i = 0; i < n; ++i) {
    tok->pieces_.push_back(tok->sp_->IdToPiece(i));
    tok->scores_.push_back(tok->sp_->GetScore(i));
    TokenType t = TokenType::kNormal;
    if (tok->sp_->IsControl(i))
      t = TokenType::kControl;
    else if (tok->sp_->IsUnknown(i))
      t = TokenType::kUnknown;
    else if (tok->sp_->IsByte(i))
      t = TokenType::kByte;
    else if (tok->sp_->IsUnused(i))
      t = TokenType::kUnused;
    tok->types_.push_back(t);
  }
  SpecialTokens s;
  s.bos = tok->sp_->bos_id();
  s.eos = tok->sp_->eos_id();
  s.unk = tok->sp_->unk_id();
  s.pad = tok->sp_->pad_id();
  tok->special_ = s;
  tok->cache_max_token_bytes();
  return tok;
}

std::vector<int> SentencePieceTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int> ids;
  if (add_bos && special_.bos >= 0) ids.push_back(special_.bos);
  std::vector<int> body;
  if (!sp_->Encode(std::string(text), &body).ok()) return ids;
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::string SentencePieceTokenizer::decode_token(int prev, int token) const {
  if (token < 0 || token >= n_vocab()) return {};
  switch (types_[token]) {
    case TokenType::kControl:
    case TokenType::kUnused:
      return {};
    case TokenType::kByte: {
      unsigned v = 0;
      if (std::sscanf(pieces_[token].c_str(), "<0x%2x>", &v) == 1)
        return std::string(1, static_cast<char>(v));
      return {};
    }
    default:
      break;
  }
  static const std::string kMarker = "\xE2\x96\x81";
  std::string out;
  const std::string& p = pieces_[token];
  for (size_t i = 0; i < p.size();) {
    if (p.compare(i, 3, kMarker) == 0) {
      out += ' ';
      i += 3;
    } else {
      out += p[i++];
    }
  }
  if ((prev < 0 || prev == special_.bos) && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

BpeVocab SentencePieceTokenizer::export_vocab() const {
  BpeVocab v;
  v.mode = BpeVocab::Mode::kSentencePiece;
  v.tokens = pieces_;
  v.scores = scores_;
  v.types = types_;
  v.special = special_;
  return v;
}

void register_sentencepiece_loader() {
  set_sentencepiece_loader([](const std::string& path) -> Result<std::unique_ptr<Tokenizer>> {
    RME_ASSIGN_OR_RETURN(auto t, SentencePieceTokenizer::load(path));
    return std::unique_ptr<Tokenizer>(std::move(t));
  });
}

}  // namespace rme
