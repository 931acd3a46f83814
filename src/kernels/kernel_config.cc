// kernels: building KernelConfig from the CPU probe and the environment.
#include "kernels/kernel_config.h"

#include <cstdlib>
#include <cstring>

#include "kernels/blas.h"

namespace rme {
namespace {
bool env_is_zero(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, "0") == 0;
}
}  // namespace

const KernelConfig& KernelConfig::best() {
  static const KernelConfig c = [] {
    KernelConfig k;
    k.isa = supported_isas().back();
    k.blas = fast_blas();  // loads the library now, not inside a matmul on a pool thread
    return k;
  }();
  return c;
}

Result<KernelConfig> KernelConfig::with_isa(const std::string& name) const {
  if (name.empty()) return *this;
  std::string have;
  for (Isa isa : supported_isas()) {
    if (isa_name(isa) == name) {
      if (bf16 && isa != Isa::kAvx512)
        return invalid_argument("ISA '" + name + "' has no bf16 products (RME_BF16=1 / --bf16)");
      KernelConfig k = *this;
      k.isa = isa;
      return k;
    }
    have += (have.empty() ? "" : ", ") + std::string(isa_name(isa));
  }
  return invalid_argument("ISA '" + name + "' is not one this CPU runs (" + have + ")");
}

Result<KernelConfig> KernelConfig::from_env() {
  KernelConfig k = best();
  if (env_is_zero("RME_INT8")) k.int8 = false;
  if (env_is_zero("RME_BLAS")) k.blas = false;
  const char* isa = std::getenv("RME_ISA");
  auto r = k.with_isa(isa == nullptr ? "" : isa);
  if (!r.ok()) return Status(r.status().code(), "RME_ISA: " + r.status().message());
  if (const char* b = std::getenv("RME_BF16"); b != nullptr && std::strcmp(b, "1") == 0) {
    r = r->with_bf16();
    if (!r.ok()) return Status(r.status().code(), "RME_BF16: " + r.status().message());
  }
  return r;
}

Result<KernelConfig> KernelConfig::with_bf16() const {
  if (isa != Isa::kAvx512)
    return invalid_argument("bf16 products need the avx512 ISA (this config runs " +
                            std::string(isa_name(isa)) + ")");
  if (!cpu_features().avx512bf16)
    return invalid_argument("bf16 products need AVX512-BF16, which this CPU lacks");
  KernelConfig k = *this;
  k.bf16 = true;
  return k;
}

std::string KernelConfig::describe() const {
  std::string s(isa_name(isa));
  if (int8) s += ", int8";
  if (bf16) s += ", bf16";
  if (batch_invariant) s += ", batch-invariant";
  if (blas && fast_blas()) s += ", blas";
  return s;
}

}  // namespace rme
