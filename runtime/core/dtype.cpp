#include "runtime/core/dtype.h"

#include <bit>

namespace moe {

int dtype_bits(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 32;
    case DType::kF16: return 16;
    case DType::kBF16: return 16;
    case DType::kI8: return 8;
    case DType::kI4: return 4;
    case DType::kI32: return 32;
    case DType::kU8: return 8;
    case DType::kMxfp4: return 4;  // the packed values; the scales are another 8 bits per 32
    case DType::kF8E4M3: return 8;  // the values; the block scales are 32 bits per block
  }
  return 0;
}

size_t dtype_bytes(DType dtype, size_t count) {
  return (count * static_cast<size_t>(dtype_bits(dtype)) + 7) / 8;
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kI8: return "int8";
    case DType::kI4: return "int4";
    case DType::kI32: return "i32";
    case DType::kU8: return "u8";
    case DType::kMxfp4: return "mxfp4";
    case DType::kF8E4M3: return "fp8";
  }
  return "?";
}

bool parse_dtype(std::string_view name, DType* out) {
  struct Entry {
    std::string_view name;
    DType dtype;
  };
  static constexpr Entry kEntries[] = {
      {"f32", DType::kF32},   {"F32", DType::kF32},   {"float32", DType::kF32},
      {"f16", DType::kF16},   {"F16", DType::kF16},   {"float16", DType::kF16},
      {"bf16", DType::kBF16}, {"BF16", DType::kBF16}, {"bfloat16", DType::kBF16},
      {"int8", DType::kI8},   {"I8", DType::kI8},     {"int4", DType::kI4},
      {"i32", DType::kI32},   {"I32", DType::kI32},   {"u8", DType::kU8},     {"U8", DType::kU8},
      {"mxfp4", DType::kMxfp4}, {"fp8", DType::kF8E4M3}, {"F8_E4M3", DType::kF8E4M3},
  };
  for (const Entry& e : kEntries) {
    if (e.name == name) {
      *out = e.dtype;
      return true;
    }
  }
  return false;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mantissa <<= 1;
      } while ((mantissa & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mantissa & 0x3ffu) << 13);
    }
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float value) {
  const uint32_t u = std::bit_cast<uint32_t>(value);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow to inf
  if (abs < 0x38800000u) {  // subnormal or zero in f16: round to nearest even on the shifted value
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const int shift = 126 - static_cast<int>(abs >> 23);  // 14..24
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent
  r += 0xfffu + ((r >> 13) & 1u);
  return static_cast<uint16_t>(sign | (r >> 13));
}

}  // namespace moe
