// FP8 e4m3fn decoding and encoding (the values torch's float8_e4m3fn gives), block scales over
// partial edge blocks and slices of a bigger grid, and the matmul's FP8 path against the
// dequantised f32 matrix: the same bits (both follow matmul.h's lanes) on every instruction set.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/weight_encoding.h"
#include "runtime/core/error.h"

namespace moe::cpu {
namespace {

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Fp8, E4m3CodesAreTheFormatsValues) {
  EXPECT_EQ(e4m3_value(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(e4m3_value(0x80)));
  EXPECT_EQ(e4m3_value(0x38), 1.0f);         // exponent 7 = bias
  EXPECT_EQ(e4m3_value(0x3C), 1.5f);
  EXPECT_EQ(e4m3_value(0x7E), 448.0f);       // the largest
  EXPECT_EQ(e4m3_value(0xFE), -448.0f);
  EXPECT_EQ(e4m3_value(0x08), 0x1p-6f);      // the smallest normal
  EXPECT_EQ(e4m3_value(0x01), 0x1p-9f);      // the smallest subnormal
  EXPECT_EQ(e4m3_value(0x07), 7 * 0x1p-9f);
  EXPECT_EQ(e4m3_value(0x78), 256.0f);       // exponent 15 holds numbers (no infinities)
  EXPECT_TRUE(std::isnan(e4m3_value(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3_value(0xFF)));
  // Increasing codes are increasing values, and every value encodes back to its code.
  for (int code = 0; code < 0x7F; ++code) {
    if (code > 0) {
      EXPECT_LT(e4m3_value(uint8_t(code - 1)), e4m3_value(uint8_t(code))) << code;
    }
    EXPECT_EQ(e4m3_code(e4m3_value(uint8_t(code))), code) << code;
    EXPECT_EQ(e4m3_code(e4m3_value(uint8_t(code | 0x80))), code | 0x80) << code;
  }
}

TEST(Fp8, EncodesToTheNearestTiesToEven) {
  EXPECT_EQ(e4m3_code(1.0625f), 0x38);   // halfway 1 (even) and 1.125
  EXPECT_EQ(e4m3_code(1.1875f), 0x3A);   // halfway 1.125 (odd) and 1.25
  EXPECT_EQ(e4m3_code(1.07f), 0x39);
  EXPECT_EQ(e4m3_code(0x1p-10f), 0x00);  // halfway 0 and the smallest subnormal
  EXPECT_EQ(e4m3_code(0x1.8p-10f), 0x01);
  EXPECT_EQ(e4m3_code(15.5f), 0x58);     // halfway 15 (odd) and 16: rolls into the next exponent
  EXPECT_EQ(e4m3_code(1000.0f), 0x7E);   // saturates
  EXPECT_EQ(e4m3_code(-1000.0f), 0xFE);
  EXPECT_EQ(e4m3_code(std::numeric_limits<float>::quiet_NaN()), 0x7F);
}

// Element (r, c) is value x scale[r / block_rows][c / block_cols], over a ceil-divided grid.
TEST(Fp8, BlockScalesCoverPartialEdgeBlocks) {
  const int64_t rows = 5, cols = 7;
  std::vector<uint8_t> q(size_t(rows * cols), 0x38);  // every value 1
  const float scales[2 * 3] = {1, 2, 3, 4, 5, 6};    // blocks of 3 x 3: a 2 x 3 grid
  WeightMatrix w;
  w.data = q.data();
  w.dtype = DType::kF8E4M3;
  w.rows = rows;
  w.cols = cols;
  w.block_scales = scales;
  w.block_rows = w.block_cols = 3;
  w.block_stride = 3;
  float out[7];
  row_to_f32(w, 4, out);
  EXPECT_EQ(std::vector<float>(out, out + 7), (std::vector<float>{4, 4, 4, 5, 5, 5, 6}));
  row_to_f32(w, 2, out);
  EXPECT_EQ(std::vector<float>(out, out + 7), (std::vector<float>{1, 1, 1, 2, 2, 2, 3}));
  // A slice starting at (1, 2) of the same grid.
  WeightMatrix s = w;
  s.data = q.data() + 1 * cols + 2;
  s.row_stride = cols;
  s.rows = 3;
  s.cols = 4;
  s.block_row0 = 1;
  s.block_col0 = 2;
  row_to_f32(s, 2, out);  // row 3 of the matrix, columns 2..5
  EXPECT_EQ(std::vector<float>(out, out + 4), (std::vector<float>{4, 5, 5, 5}));
}

// The FP8 path and the same values as f32 through the ordinary kernels: the same bits, on odd
// shapes with partial blocks, any batch, every instruction set.
// Every byte value, in every column position of a block, with scales that are tiny, ordinary,
// large and at the edge of the range: the kernels' widening (bit moves, the block scale with its
// 2^8 folded in) gives the dequantised matrix's bits; a NaN byte gives a NaN.
TEST(Fp8, EveryCodeAndScaleGivesTheDequantisedBits) {
  const int64_t rows = 8, cols = 256 + 19;
  std::vector<uint8_t> codes(size_t(rows * cols));
  for (size_t i = 0; i < codes.size(); ++i) {
    codes[i] = uint8_t((i * 37 + i / size_t(cols)) % 256);
    if ((codes[i] & 0x7F) == 0x7F) codes[i] ^= 0x01;  // NaN bytes apart, below
  }
  for (const float scale : {1e-30f, 3.7e-3f, 0.37f, 1e20f, 0x1p119f, 0x1p125f}) {
    const int block = 64;
    std::vector<float> scales(size_t(fp8_blocks(rows, block) * fp8_blocks(cols, block)), scale);
    scales[1] = scale / 3;
    WeightMatrix w;
    w.data = codes.data();
    w.dtype = DType::kF8E4M3;
    w.rows = rows;
    w.cols = cols;
    w.block_scales = scales.data();
    w.block_rows = w.block_cols = block;
    w.block_stride = fp8_blocks(cols, block);
    std::vector<float> dequantised(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        dequantised[size_t(r * cols + c)] = e4m3_value(codes[size_t(r * cols + c)]) * scales[size_t(r / block * w.block_stride + c / block)];
    WeightMatrix f32;
    f32.data = dequantised.data();
    f32.dtype = DType::kF32;
    f32.rows = rows;
    f32.cols = cols;
    for (int64_t m : {1, 5, 16}) {  // 16: the panel path
      const std::vector<float> x = random_floats(size_t(m * cols), 5 + uint32_t(m), 1e-3f);
      std::vector<float> want(size_t(m * rows)), got(size_t(m * rows));
      for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
        set_isa(isa);
        matmul(x.data(), m, f32, want.data());
        matmul(x.data(), m, w, got.data());
        EXPECT_TRUE(same_bits(got, want)) << "scale " << scale << " m " << m << " " << isa_name(active_isa());
      }
      set_isa(Isa::kAvx512);
    }
  }
  std::vector<uint8_t> nan_row(64, 0x38);
  nan_row[17] = 0xFF;
  const float one = 1.0f;
  WeightMatrix w;
  w.data = nan_row.data();
  w.dtype = DType::kF8E4M3;
  w.rows = 1;
  w.cols = 64;
  w.block_scales = &one;
  w.block_rows = w.block_cols = 128;
  w.block_stride = 1;
  const std::vector<float> x(64, 1.0f);
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    set_isa(isa);
    float y = 0;
    matmul(x.data(), 1, w, &y);
    EXPECT_TRUE(std::isnan(y)) << isa_name(active_isa());
  }
  set_isa(Isa::kAvx512);
}

TEST(Fp8, MatmulGivesTheDequantisedMatrixsBits) {
  for (const auto& [rows, cols, block] : {std::tuple{37, 45, 16}, {64, 128, 128}, {130, 200, 128}, {9, 31, 8}, {200, 64, 32}}) {
    const std::vector<float> values = random_floats(size_t(rows * cols), 7 + rows, 0.05f);
    const EncodedMatrix fp8 = encode_matrix(values.data(), rows, cols, DType::kF8E4M3, block);
    std::vector<float> dequantised(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r) row_to_f32(fp8.matrix, r, dequantised.data() + r * cols);
    double err = 0, ref = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      err = std::max(err, double(std::fabs(dequantised[i] - values[i])));
      ref = std::max(ref, double(std::fabs(values[i])));
    }
    EXPECT_LT(err, ref / 16) << "e4m3 keeps 3 mantissa bits";
    WeightMatrix f32;
    f32.data = dequantised.data();
    f32.dtype = DType::kF32;
    f32.rows = rows;
    f32.cols = cols;
    const std::vector<float> bias = random_floats(size_t(rows), 3);
    for (int64_t m : {1, 3, 8}) {
      const std::vector<float> x = random_floats(size_t(m * cols), 11 + uint32_t(m));
      std::vector<float> want(size_t(m * rows)), got(size_t(m * rows));
      for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
        set_isa(isa);
        matmul(x.data(), m, f32, want.data(), bias.data());
        matmul(x.data(), m, fp8.matrix, got.data(), bias.data());
        EXPECT_TRUE(same_bits(got, want)) << rows << "x" << cols << " m " << m << " " << isa_name(active_isa());
      }
      set_isa(Isa::kAvx512);
    }
  }
}

// A slice of a bigger FP8 matrix placed in its grid (MLA's per-head rows and transposed
// columns), blocks that 8- and 16-wide registers straddle: the f32 slice's bits on every path.
TEST(Fp8, SlicesInTheirGridGiveTheF32SlicesBits) {
  const int64_t rows = 50, cols = 90;
  const std::vector<float> values = random_floats(size_t(rows * cols), 5, 0.1f);
  // Blocks of 12 take the FP8 path; of 32, slices starting on a 32-column edge the AVX-512 tiles.
  for (const int block : {12, 32}) {
    const EncodedMatrix fp8 = encode_matrix(values.data(), rows, cols, DType::kF8E4M3, block);
    std::vector<float> dequantised(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r) row_to_f32(fp8.matrix, r, dequantised.data() + r * cols);
    for (const auto& [r0, c0, n_rows, n_cols] :
         {std::tuple{5, 7, 30, 61}, {0, 13, 50, 77}, {19, 0, 7, 90}, {3, 29, 9, 17}, {37, 32, 13, 58}, {5, 0, 45, 90}}) {
      WeightMatrix s = fp8.matrix;
      s.data = static_cast<const uint8_t*>(fp8.matrix.data) + r0 * cols + c0;
      s.rows = n_rows;
      s.cols = n_cols;
      s.row_stride = cols;
      s.block_row0 = r0;
      s.block_col0 = c0;
      WeightMatrix f32;
      f32.data = dequantised.data() + r0 * cols + c0;
      f32.dtype = DType::kF32;
      f32.rows = n_rows;
      f32.cols = n_cols;
      f32.row_stride = cols;
      for (int64_t m : {1, 4, 9}) {
        const std::vector<float> x = random_floats(size_t(m * n_cols), 17);
        std::vector<float> want(size_t(m * n_rows)), got(size_t(m * n_rows));
        for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
          set_isa(isa);
          matmul(x.data(), m, f32, want.data());
          matmul(x.data(), m, s, got.data());
          EXPECT_TRUE(same_bits(got, want)) << r0 << "," << c0 << " m " << m << " " << isa_name(active_isa());
        }
        set_isa(Isa::kAvx512);
      }
    }
  }
}

TEST(Fp8, MatmulRefusesMissingScales) {
  std::vector<uint8_t> q(64, 0x38);
  WeightMatrix w;
  w.data = q.data();
  w.dtype = DType::kF8E4M3;
  w.rows = 8;
  w.cols = 8;
  std::vector<float> x(8), y(8);
  EXPECT_THROW(matmul(x.data(), 1, w, y.data()), Error);
  const float scale = 1;
  w.block_scales = &scale;
  w.block_rows = w.block_cols = 4;
  w.block_stride = 1;  // the grid needs two columns of blocks
  EXPECT_THROW(matmul(x.data(), 1, w, y.data()), Error);
}

}  // namespace
}  // namespace moe::cpu
