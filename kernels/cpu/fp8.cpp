#include "kernels/cpu/fp8.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>


namespace moe::cpu {
namespace {

constexpr float kE4m3Max = 448.0f;

float decode(uint8_t code) {
  const int exponent = (code >> 3) & 0xF, mantissa = code & 7;
  float magnitude;
  if (exponent == 0xF && mantissa == 7) magnitude = std::numeric_limits<float>::quiet_NaN();
  else if (exponent == 0) magnitude = std::ldexp(float(mantissa), -9);  // subnormal: m/8 x 2^-6
  else magnitude = std::ldexp(float(8 + mantissa), exponent - 10);      // (1 + m/8) x 2^(e-7)
  return (code & 0x80) ? -magnitude : magnitude;
}

const std::array<float, 256>& table() {
  static const std::array<float, 256> t = [] {
    std::array<float, 256> v{};
    for (int i = 0; i < 256; ++i) v[size_t(i)] = decode(uint8_t(i));
    return v;
  }();
  return t;
}

// out[c] = value(q[c]) * scale over one block's columns; cloned so the widening vectorises.
__attribute__((target_clones("arch=x86-64-v3", "default"))) void widen(const uint8_t* __restrict q, int64_t n, float scale,
                                                                        const float* __restrict lut, float* __restrict out) {
  for (int64_t c = 0; c < n; ++c) out[c] = lut[q[c]] * scale;
}


}  // namespace

float e4m3_value(uint8_t code) { return table()[code]; }

uint8_t e4m3_code(float x) {
  if (std::isnan(x)) return 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const float a = std::min(std::fabs(x), kE4m3Max);
  int code;
  if (a < 0x1p-6f) {
    code = int(std::nearbyint(a * 0x1p9f));  // subnormal steps of 2^-9; 8 is the smallest normal's code
  } else {
    const int e = std::ilogb(a);  // 2^e <= a < 2^(e+1): steps of 2^(e-3), a carry rolls into the exponent
    code = ((e + 7) << 3) + int(std::nearbyint(std::ldexp(a, 3 - e))) - 8;
  }
  return uint8_t(sign | std::min(code, 0x7E));
}

void fp8_dequantize_row(const WeightMatrix& w, int64_t row, float* out) {
  const auto* q = static_cast<const uint8_t*>(w.data) + row * w.stride();
  const float* scales = w.block_scales + ((row + w.block_row0) / w.block_rows) * w.block_stride;
  const float* lut = table().data();
  for (int64_t c = 0; c < w.cols;) {
    const int64_t block = (c + w.block_col0) / w.block_cols;
    const int64_t end = std::min(w.cols, (block + 1) * w.block_cols - w.block_col0);
    widen(q + c, end - c, scales[block], lut, out + c);
    c = end;
  }
}

void fp8_quantize_blocks(const float* values, int64_t rows, int64_t cols, int block_rows, int block_cols, uint8_t* data,
                         float* scales) {
  const int64_t grid_cols = fp8_blocks(cols, block_cols);
  for (int64_t br = 0; br < fp8_blocks(rows, block_rows); ++br)
    for (int64_t bc = 0; bc < grid_cols; ++bc) {
      const int64_t r0 = br * block_rows, r1 = std::min(rows, r0 + block_rows);
      const int64_t c0 = bc * block_cols, c1 = std::min(cols, c0 + block_cols);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(values[r * cols + c]));
      const float scale = amax > 0 ? amax / kE4m3Max : 1.0f;
      scales[br * grid_cols + bc] = scale;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) data[r * cols + c] = e4m3_code(values[r * cols + c] / scale);
    }
}

}  // namespace moe::cpu
