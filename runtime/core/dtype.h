#pragma once
// Element types the engine computes with or stores experts in, and conversions between them.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace moe {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kI8,   // symmetric per-group quantised, scales stored beside (see QuantFormat)
  kI4,   // two values per byte, low nibble first, symmetric per-group
  kI32,  // indices (token ids, expert ids)
  kU8,   // raw bytes (MXFP4's packed blocks and e8m0 scales as a checkpoint stores them)
  kMxfp4,  // OCP MX e2m1 pairs (low nibble first) with one e8m0 scale per 32 values (kernels/cpu/mxfp4.h)
  kF8E4M3,  // float8_e4m3fn, one byte a value, with f32 block scales beside (kernels/cpu/fp8.h)
};

// Bits per element: 4 for kI4, so byte sizes go through dtype_bytes().
int dtype_bits(DType dtype);
// Bytes for `count` elements (rounded up for sub-byte types).
size_t dtype_bytes(DType dtype, size_t count);
std::string_view dtype_name(DType dtype);
// "f32", "bf16", "f16", "int8", "int4", "i32", "fp8" (and the safetensors spellings "F32", "BF16", "F8_E4M3", ...).
bool parse_dtype(std::string_view name, DType* out);

// A storage format for expert weights: a dtype plus, for integer types, the group size of the
// per-group scales (one f32 scale per `group_size` consecutive values of a row).
struct QuantFormat {
  DType dtype = DType::kBF16;
  int group_size = 0;  // 0 for float formats
  bool operator==(const QuantFormat&) const = default;
};

// bf16 and f16 live in memory as uint16_t bit patterns.
inline float bf16_to_f32(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);

}  // namespace moe
