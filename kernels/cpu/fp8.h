#pragma once
// FP8 weights as DeepSeek-V3 and Kimi-K2 release them: float8_e4m3fn values (one byte each: sign,
// 4 exponent bits of bias 7, 3 mantissa bits; exponent 0 is subnormal, 0x7F/0xFF are NaN, no
// infinities, largest 448) and one f32 scale for each block_rows x block_cols block (128 x 128 in
// the releases; the edge blocks of a shape that is not a multiple are partial, their grid
// ceil-divided). Element (r, c) of the matrix is, in f32, one multiply:
//   value(data[r][c]) * scale[r / block_rows][c / block_cols]
// as DeepSeek's weight_dequant computes it (the checkpoint calls the scales weight_scale_inv).
#include <cstdint>

#include "kernels/cpu/matmul.h"

namespace moe::cpu {

// Blocks of `block` covering `n` (ceil-div, as the scale grid's dims).
inline int64_t fp8_blocks(int64_t n, int64_t block) { return (n + block - 1) / block; }

// The value of an e4m3fn byte (exact in f32; NaN for 0x7F and 0xFF).
float e4m3_value(uint8_t code);
// The nearest e4m3fn byte to `x`, ties to even; beyond +-448 saturates, NaN gives 0x7F.
uint8_t e4m3_code(float x);

// Widens row `row` of an fp8 WeightMatrix (matmul.h) to f32: w.cols values.
void fp8_dequantize_row(const WeightMatrix& w, int64_t row, float* out);

// Quantises values [rows, cols] in blocks: each block's scale is max |x| / 448 (1 for an all-zero
// block) and each value the nearest e4m3fn of x / scale. data: [rows, cols] bytes; scales:
// [fp8_blocks(rows, block_rows), fp8_blocks(cols, block_cols)].
void fp8_quantize_blocks(const float* values, int64_t rows, int64_t cols, int block_rows, int block_cols, uint8_t* data,
                         float* scales);

}  // namespace moe::cpu
