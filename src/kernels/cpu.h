// kernels: the one probe of the CPU's features, and the instruction sets kernels can run with
// (which one a call uses is KernelConfig's: kernel_config.h).
#pragma once

#include <string_view>
#include <vector>

namespace rme {

// What this CPU can run, probed once (CPUID on x86-64, the auxiliary vector on AArch64). Every
// kernel selection reads this; nothing else asks the CPU.
struct CpuFeatures {
  bool avx2 = false;        // AVX2 + FMA + F16C (rme's AVX2 kernels need all three)
  bool avx512 = false;      // AVX-512 F + BW + VL + DQ (and F16C)
  bool avx512vnni = false;  // vpdpbusd
  bool avx512vbmi = false;  // vpermb
  bool avx512bf16 = false;  // vdpbf16ps (the opt-in bf16 products: KernelConfig::bf16)
  bool neon = false;        // AArch64 Advanced SIMD (always there on AArch64)
  bool dotprod = false;     // AArch64 sdot/udot (Armv8.2 DotProd)
};
const CpuFeatures& cpu_features();

enum class Isa { kScalar = 0, kAvx2, kAvx512, kNeon };

std::string_view isa_name(Isa isa);
// Whether this CPU runs `isa`'s kernels.
bool cpu_has(Isa isa);
// Every ISA this CPU can run, from kScalar up to the widest (tests iterate over these).
std::vector<Isa> supported_isas();

}  // namespace rme
