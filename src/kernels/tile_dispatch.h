// kernels: with_tile, the switch from a run-time token count to a tile kernel's compile-time
// one, shared by the integer tile kernels of every ISA (it holds no ISA instruction; each caller's
// lambda type is its own TU's, so no instantiation is merged across ISA flags).
#pragma once

namespace rme {

// Calls fn.template operator()<NT>() with NT = nt for nt in 2..4, else NT = 1.
template <typename Fn>
void with_tile(int nt, const Fn& fn) {
  switch (nt) {
    case 4:
      return fn.template operator()<4>();
    case 3:
      return fn.template operator()<3>();
    case 2:
      return fn.template operator()<2>();
    default:
      return fn.template operator()<1>();
  }
}

}  // namespace rme
