#include "kernels/cpu/mxfp4.h"

#include <bit>
#include <cmath>
#include <limits>
#include <vector>


namespace moe::cpu {
namespace {

constexpr float kE2m1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};


}  // namespace

float e2m1_value(uint8_t code) {
  const float magnitude = kE2m1[code & 7];
  return (code & 8) ? -magnitude : magnitude;
}

float e8m0_scale(uint8_t e) {
  if (e == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  // 2^(e - 127): a normal float for e >= 1; e == 0 is 2^-127, the subnormal 0x00400000.
  return e == 0 ? std::bit_cast<float>(uint32_t{1} << 22) : std::bit_cast<float>(uint32_t{e} << 23);
}

uint8_t e2m1_code(float x) {
  const uint8_t sign = std::signbit(x) ? 8 : 0;
  const float a = std::fabs(x);
  // Midpoints between neighbours; at a midpoint the even code (mantissa bit 0) wins.
  constexpr float kMid[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  uint8_t code = 7;
  for (uint8_t i = 0; i < 7; ++i) {
    if (a < kMid[i] || (a == kMid[i] && i % 2 == 0)) {
      code = i;
      break;
    }
  }
  return code == 0 ? 0 : uint8_t(code | sign);
}

void mxfp4_dequantize_row(const uint8_t* blocks, const uint8_t* scales, int64_t cols, float* out) {
  for (int64_t b = 0; b < cols / kMxfp4Block; ++b) {
    const float scale = e8m0_scale(scales[b]);
    const uint8_t* bytes = blocks + b * (kMxfp4Block / 2);
    float* o = out + b * kMxfp4Block;
    for (int j = 0; j < kMxfp4Block / 2; ++j) {
      o[2 * j] = e2m1_value(bytes[j] & 0xF) * scale;
      o[2 * j + 1] = e2m1_value(bytes[j] >> 4) * scale;
    }
  }
}

void mxfp4_quantize_row(const float* values, int64_t cols, uint8_t* blocks, uint8_t* scales) {
  for (int64_t b = 0; b < cols / kMxfp4Block; ++b) {
    const float* v = values + b * kMxfp4Block;
    float amax = 0.0f;
    for (int i = 0; i < kMxfp4Block; ++i) amax = std::max(amax, std::fabs(v[i]));
    int exponent = -127;
    if (amax > 0) exponent = std::max(-127, std::min(127, std::ilogb(amax) - 2));
    scales[b] = uint8_t(exponent + 127);
    const float inverse = std::ldexp(1.0f, -exponent);
    uint8_t* bytes = blocks + b * (kMxfp4Block / 2);
    for (int j = 0; j < kMxfp4Block / 2; ++j)
      bytes[j] = uint8_t(e2m1_code(v[2 * j] * inverse) | (e2m1_code(v[2 * j + 1] * inverse) << 4));
  }
}

}  // namespace moe::cpu
