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
  return r;
}

std::string KernelConfig::describe() const {
  std::string s(isa_name(isa));
  if (int8) s += ", int8";
  if (batch_invariant) s += ", batch-invariant";
  if (blas && fast_blas()) s += ", blas";
  return s;
}

}  // namespace rme
