#pragma once
// f32 values stored in one of the matmul's weight formats, owning their bytes: how tests and
// benchmarks make the matrices they hand the kernels.
#include <cstdint>
#include <vector>

#include "kernels/cpu/matmul.h"

namespace moe::cpu {

struct EncodedMatrix {
  std::vector<uint8_t> data;
  std::vector<float> scales;  // int8/int4; fp8: the block scales
  std::vector<uint8_t> exponents;  // mxfp4: e8m0 scales
  WeightMatrix matrix;        // views data and scales: movable, not copyable

  EncodedMatrix() = default;
  EncodedMatrix(EncodedMatrix&&) = default;
  EncodedMatrix& operator=(EncodedMatrix&&) = default;
  EncodedMatrix(const EncodedMatrix&) = delete;
  EncodedMatrix& operator=(const EncodedMatrix&) = delete;
};

// values: [rows, cols]. bf16/f16 round to nearest even; int8/int4 quantise by quantize.h in
// groups of `group_size` (ignored for float formats); mxfp4 by mxfp4.h (cols % 32 == 0); fp8 by
// fp8.h in square blocks of `group_size` (0: 128).
EncodedMatrix encode_matrix(const float* values, int64_t rows, int64_t cols, DType dtype, int group_size = 0);

}  // namespace moe::cpu
