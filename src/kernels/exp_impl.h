// kernels: e^x for x <= 0 written once against vector traits S (simd_*.h), for softmax.
#pragma once

namespace rme::simd {

// x = n ln2 + r with |r| <= ln2/2 (ln2 split in a high and a low part), e^r by its degree-6
// Taylor polynomial (relative error < 2e-7), times 2^n. x is clamped to -87 first, so 2^n stays a
// normal number (e^-87 ~ 1.6e-38; anything smaller is 0 after the softmax's normalization anyway).
template <typename S>
inline typename S::V exp_nonpositive(typename S::V x) {
  x = S::max(x, S::set1(-87.0f));
  const auto n = S::round_nearest(S::mul(x, S::set1(1.44269504f)));
  auto r = S::fnmadd(n, S::set1(0.693145752f), x);
  r = S::fnmadd(n, S::set1(1.42860677e-6f), r);
  auto p = S::set1(1.0f / 720);
  p = S::fmadd(p, r, S::set1(1.0f / 120));
  p = S::fmadd(p, r, S::set1(1.0f / 24));
  p = S::fmadd(p, r, S::set1(1.0f / 6));
  p = S::fmadd(p, r, S::set1(0.5f));
  p = S::fmadd(p, r, S::set1(1.0f));
  p = S::fmadd(p, r, S::set1(1.0f));
  return S::scale_pow2(p, n);
}

}  // namespace rme::simd
