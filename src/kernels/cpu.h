// kernels: instruction-set detection; the ISA is chosen once at startup and can be pinned.
#pragma once

#include <string_view>
#include <vector>

namespace rme {

enum class Isa { kScalar = 0, kAvx2, kAvx512 };

std::string_view isa_name(Isa isa);
// Every ISA this CPU can run, from kScalar up (tests iterate over these).
std::vector<Isa> supported_isas();
// The ISA kernels use: the best supported one, or RME_ISA=scalar|avx2|avx512 from the
// environment if that is supported. Decided on first call.
Isa active_isa();
// Overrides the active ISA (tests, benchmarks). Returns false if the CPU lacks it.
bool set_active_isa(Isa isa);

}  // namespace rme
