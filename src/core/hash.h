// core: splitmix64, the small integer hash rme uses wherever a value must be a pure function of
// a seed and an index (random routing, random weights, training batches).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rme {

inline uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A fast 64-bit content hash (four independent multiply-xor lanes over 8-byte words). Detects
// changed bytes (a checkpoint rewritten under a server); not cryptographic.
inline uint64_t hash_bytes(const void* data, size_t n, uint64_t seed = 0) {
  const auto* p = static_cast<const unsigned char*>(data);
  constexpr uint64_t kMul = 0x9fb21c651e98df25ull;
  uint64_t h[4] = {seed ^ 0x243f6a8885a308d3ull, seed ^ 0x13198a2e03707344ull,
                   seed ^ 0xa4093822299f31d0ull, seed ^ 0x082efa98ec4e6c89ull};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k) {
      uint64_t w;
      __builtin_memcpy(&w, p + i + 8 * k, 8);
      h[k] = (h[k] ^ w) * kMul;
      h[k] ^= h[k] >> 29;
    }
  uint64_t tail = n;
  for (; i < n; ++i) tail = (tail ^ p[i]) * kMul;
  return splitmix(h[0] ^ splitmix(h[1] ^ splitmix(h[2] ^ splitmix(h[3] ^ tail))));
}

}  // namespace rme
