#pragma once
// Symmetric per-group quantisation of weight rows (the int8 and int4 expert formats).
//
// A matrix [rows, cols] is cut into groups of `group_size` consecutive values of one row
// (cols % group_size == 0, group_size even). Each group has one f32 scale:
//   int8: scale = max|x| / 127, q = clamp(round_half_even(x / scale), -127, 127)
//   int4: scale = max|x| / 7,   q = clamp(round_half_even(x / scale), -7, 7)
// (an all-zero group has scale 0 and q = 0). Dequantised value = q * scale.
// Layout: int8 data is row-major [rows, cols] of int8_t; int4 data is row-major, two values
// per byte, element 2j in the low nibble and 2j+1 in the high nibble, two's complement.
// Scales are row-major [rows, cols / group_size] f32. Both the CPU and CUDA kernels read
// exactly this layout, and the expert store writes it.
#include <cstddef>
#include <cstdint>

#include "runtime/core/dtype.h"

namespace moe::cpu {

// Bytes of the quantised data (without scales) and number of scales of a [rows, cols] matrix.
size_t quantized_data_bytes(QuantFormat format, int64_t rows, int64_t cols);
size_t quantized_scale_count(QuantFormat format, int64_t rows, int64_t cols);

// Throws moe::Error(kInvalidArgument) for a format that is not int8/int4 or a group size
// that does not divide cols.
void quantize_rows(const float* src, int64_t rows, int64_t cols, QuantFormat format,
                   uint8_t* data_out, float* scales_out);
void dequantize_rows(const uint8_t* data, const float* scales, int64_t rows, int64_t cols,
                     QuantFormat format, float* out);

}  // namespace moe::cpu
