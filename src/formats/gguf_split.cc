// formats: split GGUF models (llama.cpp's gguf-split shards): finding and checking every shard.
#include <cstdio>
#include <regex>
#include <set>

#include "formats/gguf.h"

namespace rme {

Result<std::vector<std::unique_ptr<GgufFile>>> GgufFile::open_split(const std::string& path) {
  std::vector<std::unique_ptr<GgufFile>> out;
  RME_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> named, open(path));
  const GgufValue* count = named->find("split.count");
  const int64_t n = count && count->is_int() ? count->as_int() : 1;
  if (n <= 1) {
    out.push_back(std::move(named));
    return out;
  }
  if (n > 9999) return corrupt(path + ": split.count " + std::to_string(n) + " is absurd");
  std::smatch m;
  static const std::regex kName(R"((.*)-(\d{5})-of-(\d{5})\.gguf)");
  if (!std::regex_match(path, m, kName) || std::stoll(m[3].str()) != n)
    return invalid_argument(path + ": a shard of a " + std::to_string(n) +
                            "-file split model, but not named <name>-0000i-of-" +
                            std::string(5 - std::min<size_t>(5, std::to_string(n).size()), '0') +
                            std::to_string(n) + ".gguf");
  const int64_t named_index = std::stoll(m[2].str()) - 1;
  std::set<std::string> seen;
  int64_t n_tensors = 0;
  for (int64_t i = 0; i < n; ++i) {
    char suffix[64];  // two 64-bit counts at most: "-%05lld-of-%05lld.gguf" fits
    std::snprintf(suffix, sizeof suffix, "-%05lld-of-%05lld.gguf", static_cast<long long>(i + 1),
                  static_cast<long long>(n));
    const std::string shard = m[1].str() + suffix;
    std::unique_ptr<GgufFile> g;
    if (i == named_index) {
      g = std::move(named);
    } else {
      auto opened = open(shard);
      if (!opened.ok())
        return opened.status().with_context("shard " + std::to_string(i + 1) + " of " +
                                            std::to_string(n) + " of " + path);
      g = std::move(opened).value();
    }
    const GgufValue* no = g->find("split.no");
    const GgufValue* c = g->find("split.count");
    if (!no || !no->is_int() || no->as_int() != i || !c || !c->is_int() || c->as_int() != n)
      return corrupt(shard + ": split.no / split.count do not say shard " + std::to_string(i + 1) +
                     " of " + std::to_string(n));
    for (const GgufTensorInfo& t : g->tensors())
      if (!seen.insert(t.name).second)
        return corrupt(shard + ": tensor '" + t.name + "' is also in an earlier shard");
    n_tensors += static_cast<int64_t>(g->tensors().size());
    out.push_back(std::move(g));
  }
  if (const GgufValue* total = out[0]->find("split.tensors.count");
      total && total->is_int() && total->as_int() != n_tensors)
    return corrupt(path + ": split.tensors.count says " + std::to_string(total->as_int()) +
                   " tensors, the shards hold " + std::to_string(n_tensors));
  return out;
}

}  // namespace rme
