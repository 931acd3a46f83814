// formats: llama2.c checkpoints — legacy (v0) and version 1 float32 exports.
#include <cstring>

#include "core/file.h"
#include "formats/bind.h"
#include "formats/model_io.h"
#include "tokenizer/llama2c_vocab.h"

namespace rme {
namespace {

constexpr uint32_t kMagicV1 = 0x616b3432;  // "ak42"

}  // namespace

Result<LoadedModel> load_llama2c_model(const std::string& path, const std::string& tokenizer_path) {
  RME_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  const uint8_t* p = file->data();
  const size_t size = file->size();
  int32_t hdr[7];
  size_t data_off;
  bool shared;
  int version = 0;
  uint32_t magic = 0;
  if (size >= 4) std::memcpy(&magic, p, 4);
  if (magic == kMagicV1) {
    if (size < 256)
      return corrupt(path + ": truncated llama2.c v1 header (" + std::to_string(size) +
                     " bytes, needs 256)");
    std::memcpy(&version, p + 4, 4);
    if (version != 1)
      return unsupported(path + ": llama2.c export version " + std::to_string(version) +
                         " (rme reads the legacy format and version 1 float32)");
    std::memcpy(hdr, p + 8, sizeof(hdr));
    shared = p[8 + sizeof(hdr)] != 0;
    data_off = 256;
  } else {
    if (size < sizeof(hdr))
      return corrupt(path + ": truncated llama2.c header (" + std::to_string(size) +
                     " bytes, needs 28)");
    std::memcpy(hdr, p, sizeof(hdr));
    shared = hdr[5] > 0;
    data_off = sizeof(hdr);
  }
  auto m = std::make_unique<Model>();
  LlamaConfig& c = m->config;
  c.n_embd = hdr[0];
  c.n_ff = hdr[1];
  c.n_layer = hdr[2];
  c.n_head = hdr[3];
  c.n_head_kv = hdr[4];
  c.n_vocab = hdr[5] == INT32_MIN ? 0 : std::abs(hdr[5]);
  c.n_ctx = hdr[6];
  c.head_dim = c.n_head > 0 ? c.n_embd / c.n_head : 0;
  c.rope_style = RopeStyle::kInterleaved;
  c.rms_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.tied_output = shared;
  if (c.n_head > 0 && c.n_embd % c.n_head != 0)
    return corrupt(path + ": dim " + std::to_string(c.n_embd) + " is not a multiple of n_heads " +
                   std::to_string(c.n_head));
  RME_RETURN_IF_ERROR(c.validate().with_context(path + " (llama2.c header)"));

  const int64_t D = c.n_embd, F = c.n_ff, L = c.n_layer, V = c.n_vocab, KV = c.kv_dim();
  const int64_t Dh = c.head_dim;
  // Offsets in floats of each block, in file order.
  int64_t off = 0;
  auto take = [&](int64_t n) {
    int64_t o = off;
    off += n;
    return o;
  };
  int64_t o_emb, o_att, o_wq, o_wk, o_wv, o_wo, o_ffn, o_w1, o_w2, o_w3, o_fin, o_cls = -1;
  if (version == 0) {
    o_emb = take(V * D);
    o_att = take(L * D);
    o_wq = take(L * D * D);
    o_wk = take(L * KV * D);
    o_wv = take(L * KV * D);
    o_wo = take(L * D * D);
    o_ffn = take(L * D);
    o_w1 = take(L * F * D);
    o_w2 = take(L * D * F);
    o_w3 = take(L * F * D);
    o_fin = take(D);
    take(c.n_ctx * Dh / 2);  // freq_cis_real (unused: rme computes RoPE itself)
    take(c.n_ctx * Dh / 2);  // freq_cis_imag
  } else {
    o_att = take(L * D);
    o_ffn = take(L * D);
    o_fin = take(D);
    o_emb = take(V * D);
    o_wq = take(L * D * D);
    o_wk = take(L * KV * D);
    o_wv = take(L * KV * D);
    o_wo = take(L * D * D);
    o_w1 = take(L * F * D);
    o_w2 = take(L * D * F);
    o_w3 = take(L * F * D);
  }
  if (!shared) o_cls = take(V * D);
  const uint64_t need = data_off + static_cast<uint64_t>(off) * 4;
  // llama2.c exports hold exactly the header and the weights, so any other size means the header's
  // dimensions do not describe the data (reading on would give garbage weights, not an error).
  if (size != need)
    return corrupt(path + ": file is " + std::to_string(size) +
                   " bytes, the header (dim=" + std::to_string(D) + " hidden=" + std::to_string(F) +
                   " layers=" + std::to_string(L) + " vocab=" + std::to_string(V) + ") needs " +
                   std::to_string(need));
  const float* base = reinterpret_cast<const float*>(p + data_off);
  auto mat = [&](int64_t o, int64_t rows, int64_t cols) {
    return MatView{DType::kF32, rows, cols, base + o};
  };
  m->weights.tok_embd = mat(o_emb, V, D);
  m->weights.out_norm = base + o_fin;
  m->weights.output = shared ? m->weights.tok_embd : mat(o_cls, V, D);
  m->weights.layers.resize(L);
  for (int64_t l = 0; l < L; ++l) {
    LayerWeights& w = m->weights.layers[l];
    w.attn_norm = base + o_att + l * D;
    w.ffn_norm = base + o_ffn + l * D;
    w.wq = mat(o_wq + l * D * D, D, D);
    w.wk = mat(o_wk + l * KV * D, KV, D);
    w.wv = mat(o_wv + l * KV * D, KV, D);
    w.wo = mat(o_wo + l * D * D, D, D);
    w.w_gate = mat(o_w1 + l * F * D, F, D);
    w.w_down = mat(o_w2 + l * D * F, D, F);
    w.w_up = mat(o_w3 + l * F * D, F, D);
  }
  m->files.push_back(file);
  m->source = path;
  m->format = "llama2c";
  LoadedModel out;
  if (!tokenizer_path.empty()) {
    RME_ASSIGN_OR_RETURN(BpeVocab v, read_llama2c_vocab(tokenizer_path, c.n_vocab));
    auto tok = BpeTokenizer::create(std::move(v));
    if (!tok.ok()) return tok.status().with_context(tokenizer_path);
    out.tokenizer = std::move(tok).value();
  }
  out.model = std::move(m);
  return out;
}

}  // namespace rme
