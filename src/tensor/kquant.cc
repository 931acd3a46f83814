// tensor: reference dequantization of the K-quant super-blocks (one loop per type, in the order
// ggml stores the weights).
#include "tensor/kquant.h"

#include "tensor/half.h"

namespace rme {
namespace {

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block: sub-blocks 0-3 in the
// low 6 bits of bytes 0-3 (scales) and 4-7 (mins); 4-7 in bytes 8-11's nibbles, with their top
// two bits in the top bits of bytes 0-7.
void scale_min(int j, const uint8_t* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void q4_k(const uint8_t* b, float* y) {
  const float d = f16_to_f32(static_cast<uint16_t>(b[0] | b[1] << 8));
  const float dmin = f16_to_f32(static_cast<uint16_t>(b[2] | b[3] << 8));
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int j = 0; j < 4; ++j) {  // 64 weights: a low-nibble sub-block, then a high-nibble one
    int s0, m0, s1, m1;
    scale_min(2 * j, scales, &s0, &m0);
    scale_min(2 * j + 1, scales, &s1, &m1);
    for (int l = 0; l < 32; ++l) y[l] = d * s0 * (q[l] & 0xF) - dmin * m0;
    for (int l = 0; l < 32; ++l) y[32 + l] = d * s1 * (q[l] >> 4) - dmin * m1;
    q += 32;
    y += 64;
  }
}

void q5_k(const uint8_t* b, float* y) {
  const float d = f16_to_f32(static_cast<uint16_t>(b[0] | b[1] << 8));
  const float dmin = f16_to_f32(static_cast<uint16_t>(b[2] | b[3] << 8));
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* q = b + 48;
  for (int j = 0; j < 4; ++j) {
    int s0, m0, s1, m1;
    scale_min(2 * j, scales, &s0, &m0);
    scale_min(2 * j + 1, scales, &s1, &m1);
    const uint8_t u0 = static_cast<uint8_t>(1u << (2 * j)),
                  u1 = static_cast<uint8_t>(2u << (2 * j));
    for (int l = 0; l < 32; ++l) y[l] = d * s0 * ((q[l] & 0xF) + (qh[l] & u0 ? 16 : 0)) - dmin * m0;
    for (int l = 0; l < 32; ++l)
      y[32 + l] = d * s1 * ((q[l] >> 4) + (qh[l] & u1 ? 16 : 0)) - dmin * m1;
    q += 32;
    y += 64;
  }
}

void q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16_to_f32(static_cast<uint16_t>(b[208] | b[209] << 8));
  for (int half = 0; half < 2; ++half) {  // 128 weights from 64 low bytes and 32 high bytes
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * sc[is] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

}  // namespace

std::optional<KQuant> kquant_from_ggml(uint32_t ggml_type) {
  switch (ggml_type) {
    case 12:
      return KQuant::kQ4_K;
    case 13:
      return KQuant::kQ5_K;
    case 14:
      return KQuant::kQ6_K;
  }
  return std::nullopt;
}

const char* kquant_name(KQuant t) {
  switch (t) {
    case KQuant::kQ4_K:
      return "Q4_K";
    case KQuant::kQ5_K:
      return "Q5_K";
    case KQuant::kQ6_K:
      return "Q6_K";
  }
  return "?";
}

size_t kquant_block_bytes(KQuant t) {
  switch (t) {
    case KQuant::kQ4_K:
      return 144;
    case KQuant::kQ5_K:
      return 176;
    case KQuant::kQ6_K:
      return 210;
  }
  return 0;
}

void dequantize_kquant_row(KQuant t, const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const uint8_t*>(src);
  const size_t bytes = kquant_block_bytes(t);
  for (int64_t i = 0; i < n / kKBlock; ++i, b += bytes, dst += kKBlock) {
    switch (t) {
      case KQuant::kQ4_K:
        q4_k(b, dst);
        break;
      case KQuant::kQ5_K:
        q5_k(b, dst);
        break;
      case KQuant::kQ6_K:
        q6_k(b, dst);
        break;
    }
  }
}

}  // namespace rme
