// tests/fuzz: seeded, bounded, structure-aware fuzzing of everything rme reads from outside —
// GGUF, safetensors + config.json, llama2.c headers, tokenizer files, MoE layouts and request
// bodies. Every input must give a value or an error: never a crash, abort, hang or huge
// allocation (run under ASan/UBSan by scripts/asan-tests.sh). Inputs that once crashed rme are
// replayed from tests/fuzz/regressions/. RME_FUZZ_ITERS scales the counts (default 1: about 20 s).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "formats/gguf.h"
#include "formats/model_io.h"
#include "model/forward.h"
#include "server/openai.h"
#include "tokenizer/hf_tokenizer.h"
#include "util/tiny_model.h"

namespace rme {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

int scale() {
  const char* s = std::getenv("RME_FUZZ_ITERS");
  return s ? std::max(1, std::atoi(s)) : 1;
}
std::string slurp(const std::string& p) { return read_file(p).value(); }
void dump(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// Values that break parsers: boundaries, signs, sizes.
uint64_t interesting(std::mt19937_64& rng) {
  static const uint64_t k[] = {0,          1,          2,          3,          7,
                               31,         32,         255,        4096,       65535,
                               0x7fffffff, 0x80000000, 0xffffffff, 1ull << 32, 1ull << 40,
                               1ull << 62, ~0ull >> 1, ~0ull,      ~0ull - 1,  12};
  return rng() % 3 ? k[rng() % std::size(k)] : rng();
}

// Byte-level mutations with a bias to the first `hot` bytes (headers and metadata).
std::string mutate_bytes(std::string s, size_t hot, std::mt19937_64& rng) {
  const int n = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < n && !s.empty(); ++i) {
    const size_t span = std::min(s.size(), hot);
    size_t at = rng() % span;
    switch (rng() % 5) {
      case 0:
        s[at] = static_cast<char>(rng());
        break;
      case 1: {  // an interesting 4- or 8-byte integer at an aligned offset
        const size_t w = rng() % 2 ? 4 : 8;
        at = at / w * w;
        if (at + w <= s.size()) {
          const uint64_t v = interesting(rng);
          std::memcpy(&s[at], &v, w);
        }
        break;
      }
      case 2:
        s.resize(rng() % s.size());  // truncation
        break;
      case 3:
        s.insert(at, s.substr(rng() % span, rng() % 64));  // duplicated run
        break;
      default:
        s.erase(at, rng() % 16);
    }
  }
  return s;
}

// Where a GGUF file's fields are, so mutations can aim at them: each metadata value's type id
// and value, array element types and lengths, each tensor's rank, dims, type and offset.
struct GgufField {
  size_t at, width;
};
std::vector<GgufField> gguf_fields(const std::string& s) {
  std::vector<GgufField> out;
  size_t p = 8;
  auto u32 = [&](size_t at) {
    uint32_t v = 0;
    if (at + 4 <= s.size()) std::memcpy(&v, &s[at], 4);
    return v;
  };
  auto u64 = [&](size_t at) {
    uint64_t v = 0;
    if (at + 8 <= s.size()) std::memcpy(&v, &s[at], 8);
    return v;
  };
  const uint64_t n_tensors = u64(p), n_kv = u64(p + 8);
  out.push_back({p, 8});
  out.push_back({p + 8, 8});
  p += 16;
  static const size_t kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  // Skips one value of type t at p; false if malformed.
  std::function<bool(uint32_t, bool)> skip = [&](uint32_t t, bool record) -> bool {
    if (t > 12 || p > s.size()) return false;
    if (t == 8) {
      if (record) out.push_back({p, 8});
      p += 8 + u64(p);
    } else if (t == 9) {
      const uint32_t et = u32(p);
      const uint64_t n = u64(p + 4);
      if (record) out.push_back({p, 4}), out.push_back({p + 4, 8});
      p += 12;
      for (uint64_t i = 0; i < n && p <= s.size(); ++i)
        if (!skip(et, record && i < 2)) return false;
    } else {
      if (record) out.push_back({p, kSize[t]});
      p += kSize[t];
    }
    return p <= s.size();
  };
  for (uint64_t i = 0; i < n_kv && p < s.size(); ++i) {
    p += 8 + u64(p);  // key
    out.push_back({p, 4});
    const uint32_t t = u32(p);
    p += 4;
    if (!skip(t, true)) return out;
  }
  for (uint64_t i = 0; i < n_tensors && p < s.size(); ++i) {
    p += 8 + u64(p);  // name
    const uint32_t rank = u32(p);
    out.push_back({p, 4});
    p += 4;
    for (uint32_t d = 0; d < rank && d < 8; ++d, p += 8) out.push_back({p, 8});
    out.push_back({p, 4});      // type
    out.push_back({p + 4, 8});  // offset
    p += 12;
  }
  return out;
}

// Sets a few of the fields to interesting values.
std::string mutate_gguf(std::string s, const std::vector<GgufField>& fields, std::mt19937_64& rng) {
  for (int n = 1 + static_cast<int>(rng() % 3); n > 0 && !fields.empty(); --n) {
    const GgufField& f = fields[rng() % fields.size()];
    if (f.at + f.width > s.size()) continue;
    uint64_t v = interesting(rng);
    if (rng() % 3 == 0) {  // nudge the current value instead
      uint64_t cur = 0;
      std::memcpy(&cur, &s[f.at], f.width);
      v = cur + (rng() % 2 ? 1 : -1) * static_cast<uint64_t>(1 + rng() % 4);
    }
    std::memcpy(&s[f.at], &v, f.width);
  }
  return s;
}

// A random JSON value of any type, sometimes deep.
json random_value(std::mt19937_64& rng, int depth = 0) {
  switch (rng() % (depth > 3 ? 7 : 9)) {
    case 0:
      return nullptr;
    case 1:
      return rng() % 2 == 0;
    case 2:
      return static_cast<int64_t>(interesting(rng));
    case 3:
      return -static_cast<int64_t>(rng() % 100000);
    case 4:
      return std::ldexp(static_cast<double>(rng() % 1000) - 500, static_cast<int>(rng() % 80) - 40);
    case 5:
      return std::string(rng() % 5, static_cast<char>('a' + rng() % 26));
    case 6:
      return std::string("\xff\xfe\xE2\x82", rng() % 5);  // invalid UTF-8
    case 7: {
      json a = json::array();
      for (int i = static_cast<int>(rng() % 4); i > 0; --i)
        a.push_back(random_value(rng, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      o["k" + std::to_string(rng() % 4)] = random_value(rng, depth + 1);
      return o;
    }
  }
}

// Replaces, removes or retypes a few fields anywhere in a JSON document.
void mutate_json(json& j, std::mt19937_64& rng, int depth = 0) {
  if (j.is_object() && !j.empty()) {
    for (int n = 1 + static_cast<int>(rng() % 2); n > 0; --n) {
      auto it = j.begin();
      std::advance(it, rng() % j.size());
      const int op = static_cast<int>(rng() % 4);
      if (op == 0) {
        j.erase(it);
        if (j.empty()) return;
      } else if (op == 1 || depth > 4) {
        *it = random_value(rng);
      } else {
        mutate_json(*it, rng, depth + 1);
      }
    }
  } else if (j.is_array() && !j.empty()) {
    const size_t i = rng() % j.size();
    if (rng() % 2)
      mutate_json(j[i], rng, depth + 1);
    else
      j[i] = random_value(rng);
  } else {
    j = random_value(rng);
  }
}

// Loads path; if it loads, runs two tokens through it (accepted nonsense must not crash later).
// Returns whether it loaded.
bool load_and_touch(const std::string& path) {
  auto r = load_model(path);
  if (!r.ok()) {
    EXPECT_FALSE(r.status().message().empty());
    EXPECT_NE(r.status().code(), StatusCode::kInternal) << r.status().message();
    return false;
  }
  static ThreadPool pool(1);
  Forward fwd(*r->model, 4, pool);
  KvCache kv(r->model->config, 4);
  const int ids[2] = {1, 0};
  std::vector<float> logits(static_cast<size_t>(r->model->config.n_output()) * 2);
  (void)fwd.run(ids, 0, kv, logits.data(), true);
  return true;
}

// How many mutants were accepted: a fuzzer that only ever hits the first check tests little.
void report(const char* what, int loaded, int total) {
  std::printf("%s: %d of %d mutants loaded\n", what, loaded, total);
  EXPECT_GT(total, 0);
}

class FuzzTest : public ::testing::Test {
 protected:
  void TearDown() override { set_log_level(LogLevel::kWarn); }
  void SetUp() override {
    set_log_level(LogLevel::kError);  // "no tokenizer" warnings per mutant
    dir_ = test::temp_dir("fuzz");
    w_ = test::random_weights(test::tiny_config(40, 32, 2, 4, 2, 64, false), 9);
  }
  bool over(std::chrono::steady_clock::time_point t0, double s) const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >
           s * scale();
  }
  std::string dir_;
  test::HfWeights w_;
};

TEST_F(FuzzTest, GgufFiles) {
  for (DType t : {DType::kF16, DType::kQ8_0, DType::kQ4_0}) {
    test::write_gguf(w_, dir_ + "/good.gguf", t);
    const std::string good = slurp(dir_ + "/good.gguf");
    std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
    const auto t0 = std::chrono::steady_clock::now();
    int i = 0, loaded = 0;
    const std::vector<GgufField> fields = gguf_fields(good);
    ASSERT_GT(fields.size(), 50u);  // the walk understood the file
    for (; i < 1500 * scale() && !over(t0, 4); ++i) {
      dump(dir_ + "/m.gguf",
           i % 2 ? mutate_gguf(good, fields, rng) : mutate_bytes(good, 2048, rng));
      loaded += load_and_touch(dir_ + "/m.gguf");
    }
    report(std::string(dtype_name(t)).c_str(), loaded, i);
  }
}

// Files that parse but do not hold together must be refused, each one: every tensor's type code
// changed to F16, Q4_0 and Q6_K (ggml 1, 2, 14), every offset zeroed, every safetensors tensor
// aliased to another of the same size, and NaN/Inf weights under the full scan.
TEST_F(FuzzTest, InconsistentFilesAreRefused) {
  int refused = 0, total = 0;
  auto expect_refused = [&](const std::string& path, const std::string& what, LoadOptions o = {}) {
    auto r = load_model(path, o);
    ++total;
    refused += !r.ok();
    EXPECT_FALSE(r.ok()) << what << " loaded";
    if (!r.ok()) {
      EXPECT_NE(r.status().code(), StatusCode::kInternal) << r.status().message();
    }
  };
  for (DType t : {DType::kF16, DType::kQ8_0, DType::kQ4_0}) {
    test::write_gguf(w_, dir_ + "/good.gguf", t);
    const std::string good = slurp(dir_ + "/good.gguf");
    auto g = GgufFile::open(dir_ + "/good.gguf").value();
    std::string zeroed = good;
    for (const GgufTensorInfo& info : g->tensors()) {
      const size_t name_at = good.find(info.name);  // names appear once, in the tensor infos
      ASSERT_NE(name_at, std::string::npos);
      const size_t type_at = name_at + info.name.size() + 4 + 8 * info.ne.size();
      for (uint32_t code : {1u, 2u, 14u}) {
        if (code == ggml_type_of(info.dtype)) continue;
        std::string s = good;
        std::memcpy(&s[type_at], &code, 4);
        dump(dir_ + "/bad.gguf", s);
        expect_refused(dir_ + "/bad.gguf", info.name + " " + std::string(dtype_name(t)) +
                                               " -> type " + std::to_string(code));
      }
      const uint64_t zero = 0;
      std::memcpy(&zeroed[type_at + 4], &zero, 8);
    }
    dump(dir_ + "/bad.gguf", zeroed);
    expect_refused(dir_ + "/bad.gguf",
                   std::string("offsets zeroed, ") + std::string(dtype_name(t)));
  }
  test::write_hf_dir(w_, dir_ + "/hf", DType::kF32);
  const std::string st = slurp(dir_ + "/hf/model.safetensors");
  uint64_t n;
  std::memcpy(&n, st.data(), 8);
  const json h = json::parse(st.substr(8, n));
  for (const auto& [a, ia] : h.items()) {
    for (const auto& [b, ib] : h.items()) {
      if (a == b || a == "__metadata__" || b == "__metadata__" || ia["shape"] != ib["shape"])
        continue;
      json bad = h;
      bad[b]["data_offsets"] = ia["data_offsets"];
      const std::string hs = bad.dump();
      const uint64_t len = hs.size();
      std::string file(8, '\0');
      std::memcpy(&file[0], &len, 8);
      dump(dir_ + "/hf/model.safetensors", file + hs + st.substr(8 + n));
      expect_refused(dir_ + "/hf", b + " aliased to " + a);
    }
  }
  LoadOptions full;
  full.check_weights = WeightCheck::kFull;
  for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    test::HfWeights w = w_;
    w.layers[1].wv[37] = bad;
    w.out_norm[5] = bad;
    test::write_hf_dir(w, dir_ + "/nan", DType::kF16);
    expect_refused(dir_ + "/nan", "non-finite weights", full);
  }
  std::printf("inconsistent files: %d of %d refused\n", refused, total);
}

TEST_F(FuzzTest, SafetensorsAndConfigJson) {
  test::write_hf_dir(w_, dir_ + "/hf", DType::kF32);
  const std::string st = slurp(dir_ + "/hf/model.safetensors");
  const json cfg = json::parse(slurp(dir_ + "/hf/config.json"));
  uint64_t n;
  std::memcpy(&n, st.data(), 8);
  const json header = json::parse(st.substr(8, n));
  std::mt19937_64 rng(3);
  const auto t0 = std::chrono::steady_clock::now();
  int i = 0, loaded = 0;
  for (; i < 3000 * scale() && !over(t0, 5); ++i) {
    json c = cfg;
    std::string s = st;
    switch (i % 3) {
      case 0:
        mutate_json(c, rng);
        break;
      case 1: {  // the safetensors header, re-serialized with its length
        json h = header;
        mutate_json(h, rng);
        const std::string hs = h.dump(-1, ' ', false, json::error_handler_t::replace);
        const uint64_t len = hs.size();
        s = std::string(reinterpret_cast<const char*>(&len), 8) + hs + st.substr(8 + n);
        break;
      }
      default:
        s = mutate_bytes(st, 8 + n, rng);
    }
    dump(dir_ + "/hf/config.json", c.dump(-1, ' ', false, json::error_handler_t::replace));
    dump(dir_ + "/hf/model.safetensors", s);
    loaded += load_and_touch(dir_ + "/hf");
  }
  report("safetensors + config.json", loaded, i);
}

TEST_F(FuzzTest, Llama2cHeaders) {
  test::write_llama2c(w_, dir_ + "/good.bin", 0);
  const std::string good = slurp(dir_ + "/good.bin");
  std::mt19937_64 rng(4);
  int loaded = 0;
  for (int i = 0; i < 3000 * scale(); ++i) {
    std::string s = good;
    const size_t field = rng() % 7;
    const int32_t v = static_cast<int32_t>(rng() % 3 ? interesting(rng) : rng() % 200);
    std::memcpy(&s[4 * field], &v, 4);
    dump(dir_ + "/m.bin", s);
    loaded += load_and_touch(dir_ + "/m.bin");
  }
  report("llama2.c", loaded, 3000 * scale());
}

TEST_F(FuzzTest, TokenizerAndSideFiles) {
  const std::string mini = std::string(RME_SOURCE_DIR) + "/data/models/rme-mini";
  const json tj = json::parse(slurp(mini + "/tokenizer.json"));
  std::mt19937_64 rng(5);
  const auto t0 = std::chrono::steady_clock::now();
  int i = 0, loaded = 0;
  for (; i < 400 * scale() && !over(t0, 6); ++i) {
    const std::string d = dir_ + "/tok";
    fs::create_directories(d);
    json t = tj;
    json tc = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"add_bos_token", true}};
    json gen = {{"bos_token_id", 1}, {"eos_token_id", 2}};
    // Mutate inside the tokenizer's structure (model, added_tokens, pre-tokenizer) or the side
    // files.
    switch (i % 3) {
      case 0:
        mutate_json(t, rng);
        break;
      case 1:
        mutate_json(tc, rng);
        break;
      default:
        mutate_json(gen, rng);
    }
    dump(d + "/tokenizer.json", t.dump(-1, ' ', false, json::error_handler_t::replace));
    dump(d + "/tokenizer_config.json", tc.dump(-1, ' ', false, json::error_handler_t::replace));
    dump(d + "/generation_config.json", gen.dump(-1, ' ', false, json::error_handler_t::replace));
    auto tok = load_hf_tokenizer(d);
    if (tok.ok()) {
      ++loaded;
      (void)(*tok)->decode((*tok)->encode("Once upon a time, 3+4=7 \xE2\x82\xAC!", true));
    }
  }
  report("tokenizer files", loaded, i);
}

TEST_F(FuzzTest, RequestBodies) {
  auto tok = load_hf_tokenizer(std::string(RME_SOURCE_DIR) + "/data/models/rme-mini").value();
  const json seeds[] = {
      json::parse(R"({"prompt":"Once upon a time","max_tokens":5,"temperature":0.7,"top_p":0.9,
        "stop":["\n","The"],"logprobs":2,"seed":1,"presence_penalty":0.1,"logit_bias":{"5":1}})"),
      json::parse(R"({"messages":[{"role":"system","content":"x"},{"role":"user","content":
        [{"type":"text","text":"hi"}]}],"stream":true,"stream_options":{"include_usage":true},
        "logprobs":true,"top_logprobs":3,"max_completion_tokens":4})")};
  std::mt19937_64 rng(6);
  int accepted = 0;
  const int n = 40000 * scale();
  for (int i = 0; i < n; ++i) {
    const bool chat = i % 2;
    json b = seeds[chat];
    mutate_json(b, rng);
    std::string text = b.dump(-1, ' ', false, json::error_handler_t::replace);
    if (i % 7 == 0) text = mutate_bytes(text, text.size(), rng);
    if (i % 97 == 0) text = std::string(rng() % 100000, "[{"[rng() % 2]);  // deep
    auto r = parse_api_request(text, chat, *tok, ApiLimits{});
    if (r.ok()) {
      ++accepted;
      EXPECT_TRUE(r->params.sampling.validate().ok()) << text;
    }
  }
  report("request bodies", accepted, n);
}

// Inputs that once crashed rme, kept as files: requests/*.json are parsed as bodies, models/* are
// loaded as checkpoints.
TEST(FuzzRegressions, ReplayEveryKeptInput) {
  const std::string root = std::string(RME_SOURCE_DIR) + "/tests/fuzz/regressions";
  auto tok = load_hf_tokenizer(std::string(RME_SOURCE_DIR) + "/data/models/rme-mini").value();
  int n = 0;
  for (const auto& e : fs::directory_iterator(root + "/requests")) {
    const std::string body = slurp(e.path());
    EXPECT_FALSE(parse_api_request(body, false, *tok, ApiLimits{}).ok()) << e.path();
    EXPECT_FALSE(parse_api_request(body, true, *tok, ApiLimits{}).ok()) << e.path();
    ++n;
  }
  for (const auto& e : fs::directory_iterator(root + "/models")) {
    load_and_touch(e.path().string());
    ++n;
  }
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace rme
