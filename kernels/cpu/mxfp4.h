#pragma once
// MXFP4 weights (OCP Microscaling Formats v1.0, as gpt-oss releases its experts): each row of a
// [rows, cols] matrix (cols % 32 == 0) is cut into blocks of 32 values; a block holds 16 bytes of
// e2m1 codes, element 2j in the low nibble of byte j and 2j+1 in the high nibble, and one e8m0
// scale byte. Layout: blocks row-major [rows, cols / 32, 16] (cols / 2 bytes a row), scales
// row-major [rows, cols / 32], in two arrays (the checkpoint's *_blocks and *_scales tensors).
//   e2m1 code s eem: (-1)^s x {0, 0.5, 1, 1.5, 2, 3, 4, 6}[eem]
//   e8m0 byte e:     2^(e - 127); 0xFF is NaN
// A value is code x scale, exact in f32 (e == 0 gives subnormal products, still exact).
#include <cstdint>

namespace moe::cpu {

inline constexpr int kMxfp4Block = 32;

// The e2m1 value of the low four bits of `code`.
float e2m1_value(uint8_t code);
// The e8m0 scale 2^(e - 127) (NaN for 0xFF).
float e8m0_scale(uint8_t e);
// The nearest e2m1 code to `x` (ties to the even code; beyond +-6 saturates; NaN gives +6's
// code with its sign, which no finite input reaches).
uint8_t e2m1_code(float x);

// Widens `cols` values of one row (cols / 2 block bytes, cols / 32 scales) to f32.
void mxfp4_dequantize_row(const uint8_t* blocks, const uint8_t* scales, int64_t cols, float* out);

// Quantises one row as the microscaling spec does: each block's scale is 2^(floor(log2(max|x|))
// - 2) (e2m1's largest exponent is 2; an all-zero block gets e8m0 0), values rounded to the
// nearest code, saturating at +-6.
void mxfp4_quantize_row(const float* values, int64_t cols, uint8_t* blocks, uint8_t* scales);

}  // namespace moe::cpu
