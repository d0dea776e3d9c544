#include "kernels/cpu/quantize.h"

#include <algorithm>
#include <cmath>

#include "runtime/core/error.h"

namespace moe::cpu {
namespace {

int max_level(QuantFormat f) { return f.dtype == DType::kI8 ? 127 : 7; }

void check(QuantFormat f, int64_t cols) {
  MOE_CHECK(f.dtype == DType::kI8 || f.dtype == DType::kI4, ErrorCode::kInvalidArgument,
            "quantisation needs int8 or int4, not {}", dtype_name(f.dtype));
  MOE_CHECK(f.group_size > 0 && f.group_size % 2 == 0 && cols % f.group_size == 0, ErrorCode::kInvalidArgument,
            "group size {} must be even and divide the {} columns", f.group_size, cols);
}

}  // namespace

size_t quantized_data_bytes(QuantFormat format, int64_t rows, int64_t cols) {
  return format.dtype == DType::kI8 ? size_t(rows * cols) : size_t(rows * cols + 1) / 2;
}

size_t quantized_scale_count(QuantFormat format, int64_t rows, int64_t cols) {
  return format.group_size > 0 ? size_t(rows * (cols / format.group_size)) : 0;
}

void quantize_rows(const float* src, int64_t rows, int64_t cols, QuantFormat format, uint8_t* data, float* scales) {
  check(format, cols);
  const int levels = max_level(format);
  const int64_t groups = rows * cols / format.group_size;
  for (int64_t g = 0; g < groups; ++g) {
    const float* x = src + g * format.group_size;
    float amax = 0.0f;
    for (int i = 0; i < format.group_size; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float scale = amax / float(levels);
    scales[g] = scale;
    for (int i = 0; i < format.group_size; ++i) {
      // nearbyint rounds half to even under the default rounding mode.
      const int q = scale > 0 ? std::clamp(int(std::nearbyint(x[i] / scale)), -levels, levels) : 0;
      const int64_t index = g * format.group_size + i;
      if (format.dtype == DType::kI8) {
        data[index] = static_cast<uint8_t>(static_cast<int8_t>(q));
      } else {
        uint8_t& byte = data[index / 2];
        const uint8_t nibble = static_cast<uint8_t>(q & 0xF);
        byte = (index & 1) ? static_cast<uint8_t>((byte & 0x0F) | (nibble << 4)) : static_cast<uint8_t>((byte & 0xF0) | nibble);
      }
    }
  }
}

void dequantize_rows(const uint8_t* data, const float* scales, int64_t rows, int64_t cols, QuantFormat format, float* out) {
  check(format, cols);
  for (int64_t index = 0; index < rows * cols; ++index) {
    const float scale = scales[index / format.group_size];
    int q;
    if (format.dtype == DType::kI8) {
      q = static_cast<int8_t>(data[index]);
    } else {
      const int nibble = (index & 1) ? (data[index / 2] >> 4) : (data[index / 2] & 0xF);
      q = (nibble ^ 8) - 8;
    }
    out[index] = float(q) * scale;
  }
}

}  // namespace moe::cpu
