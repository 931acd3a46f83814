// core: splitmix64, the small integer hash rme uses wherever a value must be a pure function of
// a seed and an index (random routing, random weights, training batches).
#pragma once

#include <cstdint>

namespace rme {

inline uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace rme
