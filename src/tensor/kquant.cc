// tensor: K-quant super-blocks — reference dequantization (one loop per type, in the order ggml
// stores the weights) and rme's quantizers (scale search + least-squares refit per sub-block).
#include "tensor/kquant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "tensor/half.h"

namespace rme {

void kquant_scale_min(int j, const uint8_t* q, int* scale, int* min) {
  // Sub-blocks 0-3 in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); 4-7 in bytes 8-11's
  // nibbles, with their top two bits in the top bits of bytes 0-7.
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

namespace {

float load_f16(const uint8_t* p) { return f16_to_f32(static_cast<uint16_t>(p[0] | p[1] << 8)); }
void store_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  p[0] = static_cast<uint8_t>(h & 0xFF);
  p[1] = static_cast<uint8_t>(h >> 8);
}

int q45_quant(const uint8_t* qs, const uint8_t* qh, int i) {
  const int c = i / 64, l = i % 32;
  const bool high = (i % 64) >= 32;
  int q = high ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 0xF;
  if (qh != nullptr && (qh[l] >> (2 * c + (high ? 1 : 0)) & 1)) q += 16;
  return q;
}

void dequant_q45(const uint8_t* b, float* y, bool five) {
  const float d = load_f16(b), dmin = load_f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = five ? b + 16 : nullptr;
  const uint8_t* qs = five ? b + 48 : b + 16;
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    kquant_scale_min(j, scales, &sc, &m);
    for (int l = 0; l < 32; ++l) y[32 * j + l] = d * sc * q45_quant(qs, qh, 32 * j + l) - dmin * m;
  }
}

int q6_quant(const uint8_t* b, int i) {
  const int h = i / 128, r = i % 128, l = r % 32, part = r / 32;  // part: + 0, 32, 64, 96
  const uint8_t* ql = b + 64 * h;
  const uint8_t* qh = b + 128 + 32 * h;
  const int low = part < 2 ? ql[l + 32 * part] & 0xF : ql[l + 32 * (part - 2)] >> 4;
  return low | (((qh[l] >> (2 * part)) & 3) << 4);
}

void dequant_q6(const uint8_t* b, float* y) {
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_f16(b + 208);
  for (int i = 0; i < kKBlock; ++i) y[i] = d * sc[i / 16] * (q6_quant(b, i) - 32);
}

// Best (scale s >= 0, offset o <= 0) for x ≈ s * q + o with q = round((x - o) / s) in [0, L]:
// a few candidate step sizes, each refit by least squares given its rounding.
void fit_asym(const float* x, int n, int L, float* s_out, float* o_out) {
  float lo = 0, hi = x[0];
  for (int i = 0; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  *s_out = 0, *o_out = lo;
  if (hi <= lo) return;
  float best = INFINITY;
  for (int c = -4; c <= 8; ++c) {
    const float s0 = (hi - lo) / (L + 0.25f * c);
    double sq = 0, sq2 = 0, sx = 0, sxq = 0;
    int q[32];
    for (int i = 0; i < n; ++i) {
      q[i] = std::clamp(static_cast<int>(std::lround((x[i] - lo) / s0)), 0, L);
      sq += q[i], sq2 += double(q[i]) * q[i], sx += x[i], sxq += double(x[i]) * q[i];
    }
    // Least squares for s, o given q; o clamped to <= 0 (mins are stored as unsigned).
    const double det = n * sq2 - sq * sq;
    double s = det > 0 ? (n * sxq - sq * sx) / det : s0;
    double o = det > 0 ? (sx - s * sq) / n : lo;
    if (o > 0) o = 0, s = sq2 > 0 ? sxq / sq2 : s0;
    if (s <= 0) s = s0, o = lo;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double e = x[i] - (s * q[i] + o);
      err += e * e;
    }
    if (err < best)
      best = static_cast<float>(err), *s_out = static_cast<float>(s),
      *o_out = static_cast<float>(o);
  }
}

// Best signed scale s for x ≈ s * q, q = round(x / s) in [-32, 31].
float fit_sym(const float* x, int n) {
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), vmax = x[i];
  if (amax == 0) return 0;
  float best = INFINITY, best_s = vmax / -32.0f;
  for (int c = 0; c <= 12; ++c) {
    const float s0 = vmax / -(32.0f - 0.25f * c);
    double sxq = 0, sq2 = 0;
    int q[16];
    for (int i = 0; i < n; ++i) {
      q[i] = std::clamp(static_cast<int>(std::lround(x[i] / s0)), -32, 31);
      sxq += double(x[i]) * q[i], sq2 += double(q[i]) * q[i];
    }
    const double s = sq2 > 0 ? sxq / sq2 : s0;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double e = x[i] - s * q[i];
      err += e * e;
    }
    if (err < best) best = static_cast<float>(err), best_s = static_cast<float>(s);
  }
  return best_s;
}

void quant_q45(const float* x, uint8_t* b, bool five) {
  const int L = five ? 31 : 15;
  float s[8], m[8], smax = 0, mmax = 0;
  for (int j = 0; j < 8; ++j) {
    float o;
    fit_asym(x + 32 * j, 32, L, &s[j], &o);
    m[j] = -o;
    smax = std::max(smax, s[j]), mmax = std::max(mmax, m[j]);
  }
  std::memset(b, 0, five ? kQ5KBytes : kQ4KBytes);
  store_f16(b, smax / 63), store_f16(b + 2, mmax / 63);
  const float d = load_f16(b), dmin = load_f16(b + 2);
  uint8_t sc[8], mq[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>(d > 0 ? std::clamp<long>(std::lround(s[j] / d), 0, 63) : 0);
    mq[j] = static_cast<uint8_t>(dmin > 0 ? std::clamp<long>(std::lround(m[j] / dmin), 0, 63) : 0);
  }
  uint8_t* scales = b + 4;
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    scales[j + 4] = static_cast<uint8_t>((mq[j] & 63) | ((mq[j + 4] >> 4) << 6));
    scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mq[j + 4] & 0xF) << 4));
  }
  uint8_t* qh = five ? b + 16 : nullptr;
  uint8_t* qs = five ? b + 48 : b + 16;
  for (int i = 0; i < kKBlock; ++i) {
    const int j = i / 32;
    const float step = d * sc[j];
    const int q =
        step > 0 ? std::clamp(static_cast<int>(std::lround((x[i] + dmin * mq[j]) / step)), 0, L)
                 : 0;
    const int c = i / 64, l = i % 32;
    const bool high = (i % 64) >= 32;
    qs[32 * c + l] |= static_cast<uint8_t>((q & 0xF) << (high ? 4 : 0));
    if (qh != nullptr && q >= 16) qh[l] |= static_cast<uint8_t>(1u << (2 * c + (high ? 1 : 0)));
  }
}

void quant_q6(const float* x, uint8_t* b) {
  float s[16], amax = 0;
  for (int j = 0; j < 16; ++j) {
    s[j] = fit_sym(x + 16 * j, 16);
    amax = std::max(amax, std::fabs(s[j]));
  }
  std::memset(b, 0, kQ6KBytes);
  store_f16(b + 208, amax / 127);
  const float d = load_f16(b + 208);
  auto* sc = reinterpret_cast<int8_t*>(b + 192);
  for (int j = 0; j < 16; ++j)
    sc[j] = static_cast<int8_t>(d > 0 ? std::clamp<long>(std::lround(s[j] / d), -127, 127) : 0);
  for (int i = 0; i < kKBlock; ++i) {
    const float step = d * sc[i / 16];
    const int q =
        step != 0 ? std::clamp(static_cast<int>(std::lround(x[i] / step)), -32, 31) + 32 : 32;
    const int h = i / 128, r = i % 128, l = r % 32, part = r / 32;
    uint8_t* ql = b + 64 * h;
    uint8_t* qh = b + 128 + 32 * h;
    if (part < 2)
      ql[l + 32 * part] |= static_cast<uint8_t>(q & 0xF);
    else
      ql[l + 32 * (part - 2)] |= static_cast<uint8_t>((q & 0xF) << 4);
    qh[l] |= static_cast<uint8_t>((q >> 4) << (2 * part));
  }
}

}  // namespace

int kquant_quant(DType t, const uint8_t* b, int i) {
  if (t == DType::kQ6_K) return q6_quant(b, i);
  const bool five = t == DType::kQ5_K;
  return q45_quant(five ? b + 48 : b + 16, five ? b + 16 : nullptr, i);
}

void dequantize_kquant_row(DType t, const void* src, float* dst, int64_t n) {
  RME_CHECK(dtype_is_kquant(t) && n % kKBlock == 0);
  const auto* b = static_cast<const uint8_t*>(src);
  const size_t bytes = dtype_block_bytes(t);
  for (int64_t i = 0; i < n / kKBlock; ++i, b += bytes, dst += kKBlock) {
    if (t == DType::kQ6_K)
      dequant_q6(b, dst);
    else
      dequant_q45(b, dst, t == DType::kQ5_K);
  }
}

void quantize_kquant_row(DType t, const float* src, void* dst, int64_t n) {
  RME_CHECK(dtype_is_kquant(t) && n % kKBlock == 0);
  auto* b = static_cast<uint8_t*>(dst);
  const size_t bytes = dtype_block_bytes(t);
  for (int64_t i = 0; i < n / kKBlock; ++i, b += bytes, src += kKBlock) {
    if (t == DType::kQ6_K)
      quant_q6(src, b);
    else
      quant_q45(src, b, t == DType::kQ5_K);
  }
}

}  // namespace rme
