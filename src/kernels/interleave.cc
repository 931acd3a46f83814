// kernels: the 16-row interleaved layout's conversions to and from rows (scalar; run once at load).
#include "kernels/interleave.h"

#include <cstring>
#include <span>

#include "core/check.h"
#include "kernels/cpu.h"

namespace rme {

namespace {

// One field of a type's block: [offset, offset + bytes) of each row's block.
struct Field {
  int offset, bytes;
};

// The type's block fields in the order the interleaved block holds them (interleave.h).
std::span<const Field> fields(DType t) {
  static constexpr Field kQ4_0[] = {{0, 2}, {2, 16}};
  static constexpr Field kQ8_0[] = {{0, 2}, {2, 32}};
  static constexpr Field kQ4_K[] = {{0, 4}, {4, 12}, {16, 128}};
  static constexpr Field kQ5_K[] = {{0, 4}, {4, 12}, {16, 32}, {48, 128}};
  static constexpr Field kQ6_K[] = {{0, 128}, {128, 64}, {192, 16}, {208, 2}};
  static constexpr Field kBF16[] = {{0, 4}};  // a pair of elements
  static constexpr Field kF16[] = {{0, 2}};   // one element
  switch (t) {
    case DType::kF16:
      return kF16;
    case DType::kBF16:
      return kBF16;
    case DType::kQ4_0:
      return kQ4_0;
    case DType::kQ8_0:
      return kQ8_0;
    case DType::kQ4_K:
      return kQ4_K;
    case DType::kQ5_K:
      return kQ5_K;
    case DType::kQ6_K:
      return kQ6_K;
    default:
      return {};
  }
}

// Q8_0's quants are stored offset by 128 (unsigned, as vpdpbusd takes them); every other byte
// as the row has it.
uint8_t flip(DType t, const Field& f) { return t == DType::kQ8_0 && f.offset == 2 ? 0x80 : 0x00; }

// Calls fn(row byte offset, interleaved byte offset) for every byte of a block of 16 rows: row r,
// field f, its word m (4 bytes; a 2-byte field is one f16 per row).
template <typename Fn>
void for_each_byte(DType t, const Fn& fn) {
  int at = 0;
  for (const Field& f : fields(t)) {
    const int word = f.bytes == 2 ? 2 : 4;
    for (int m = 0; m < f.bytes / word; ++m)
      for (int r = 0; r < kInterleaveRows; ++r)
        for (int i = 0; i < word; ++i)
          fn(r, f, f.offset + m * word + i, at + (m * kInterleaveRows + r) * word + i);
    at += f.bytes * kInterleaveRows;
  }
}

// Elements per interleaved block: the type's block, or for BF16 a pair (one 4-byte word per row).
int64_t block_elems(DType t) { return t == DType::kBF16 ? 2 : dtype_block_size(t); }

}  // namespace

bool interleavable(DType t) { return !fields(t).empty(); }

bool interleave_helps(const KernelConfig& cfg, DType t) {
  // K-quants only in the batch-invariant mode: there the rows' invariant kernel is AVX2's (pp128
  // 90-100 tok/s against 300 interleaved, tinyllama Q4_K_M, Zen 5), while outside it the rows'
  // AVX2 decode still beats the interleaved Q6_K read (docs/performance.md).
  // BF16 under the opt-in bf16 products: their interleaved kernel broadcasts a token's pair
  // against 16 rows (gemm_bf16.h), where rows need a horizontal sum per output.
  if (t == DType::kBF16) return cfg.bf16 && cfg.isa == Isa::kAvx512 && cpu_features().avx512bf16;
  // F16 on AVX-512: one weight vector is 16 rows' element, broadcast tokens meet it with no
  // horizontal sums (gemm_f16_interleaved_avx512.cc), in either mode.
  if (t == DType::kF16) return cfg.isa == Isa::kAvx512;
  return interleavable(t) && cfg.int8 && cfg.isa == Isa::kAvx512 && cpu_features().avx512vnni &&
         (!dtype_is_kquant(t) || cfg.batch_invariant);
}

void interleave_rows16(DType t, const uint8_t* rows, int64_t n_rows, int64_t n_in, uint8_t* out) {
  RME_CHECK(interleavable(t) && n_in % block_elems(t) == 0);
  const size_t row_bytes = dtype_row_bytes(t, n_in), block = dtype_row_bytes(t, block_elems(t));
  const int64_t nb = n_in / block_elems(t);
  const int64_t full = n_rows / kInterleaveRows * kInterleaveRows;
  for (int64_t g0 = 0; g0 < full; g0 += kInterleaveRows)
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* src = rows + g0 * row_bytes + b * block;
      uint8_t* dst = out + g0 * row_bytes + b * block * kInterleaveRows;
      for_each_byte(t, [&](int r, const Field& f, int from, int to) {
        dst[to] = static_cast<uint8_t>(src[r * row_bytes + from] ^ flip(t, f));
      });
    }
  std::memcpy(out + full * row_bytes, rows + full * row_bytes, (n_rows - full) * row_bytes);
}

void deinterleave_rows16(DType t, const uint8_t* packed, int64_t n_rows, int64_t n_in, int64_t r0,
                         int64_t r1, uint8_t* rows) {
  RME_CHECK(interleavable(t) && r0 % kInterleaveRows == 0 && r0 <= r1 && r1 <= n_rows);
  const size_t row_bytes = dtype_row_bytes(t, n_in), block = dtype_row_bytes(t, block_elems(t));
  const int64_t nb = n_in / block_elems(t);
  const int64_t full = n_rows / kInterleaveRows * kInterleaveRows;
  for (int64_t g0 = r0; g0 < std::min(r1, full); g0 += kInterleaveRows)
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* src = packed + g0 * row_bytes + b * block * kInterleaveRows;
      uint8_t* dst = rows + (g0 - r0) * row_bytes + b * block;
      for_each_byte(t, [&](int r, const Field& f, int to, int from) {
        if (g0 + r < r1) dst[r * row_bytes + to] = static_cast<uint8_t>(src[from] ^ flip(t, f));
      });
    }
  if (r1 > full) {
    const int64_t from = std::max(r0, full);
    std::memcpy(rows + (from - r0) * row_bytes, packed + from * row_bytes, (r1 - from) * row_bytes);
  }
}

}  // namespace rme
