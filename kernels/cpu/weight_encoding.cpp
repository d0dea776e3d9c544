#include "kernels/cpu/weight_encoding.h"

#include <cstring>

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/mxfp4.h"
#include "kernels/cpu/quantize.h"
#include "runtime/core/error.h"

namespace moe::cpu {

EncodedMatrix encode_matrix(const float* values, int64_t rows, int64_t cols, DType dtype, int group_size) {
  EncodedMatrix m;
  const size_t n = size_t(rows * cols);
  switch (dtype) {
    case DType::kF32:
      m.data.resize(n * sizeof(float));
      std::memcpy(m.data.data(), values, m.data.size());
      break;
    case DType::kBF16:
    case DType::kF16: {
      m.data.resize(n * sizeof(uint16_t));
      auto* out = reinterpret_cast<uint16_t*>(m.data.data());
      for (size_t i = 0; i < n; ++i) out[i] = dtype == DType::kBF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      break;
    }
    case DType::kI8:
    case DType::kI4: {
      const QuantFormat f{dtype, group_size};
      m.data.resize(quantized_data_bytes(f, rows, cols));
      m.scales.resize(quantized_scale_count(f, rows, cols));
      quantize_rows(values, rows, cols, f, m.data.data(), m.scales.data());
      m.matrix.scales = m.scales.data();
      m.matrix.group_size = group_size;
      break;
    }
    case DType::kMxfp4: {
      MOE_CHECK(cols % kMxfp4Block == 0, ErrorCode::kInvalidArgument, "MXFP4 rows need a multiple of 32 columns, not {}", cols);
      m.data.resize(size_t(rows * cols / 2));
      m.exponents.resize(size_t(rows * cols / kMxfp4Block));
      for (int64_t r = 0; r < rows; ++r)
        mxfp4_quantize_row(values + r * cols, cols, m.data.data() + r * cols / 2, m.exponents.data() + r * cols / kMxfp4Block);
      m.matrix.exponents = m.exponents.data();
      break;
    }
    case DType::kF8E4M3: {  // square blocks of group_size (128, the releases', when 0)
      const int block = group_size > 0 ? group_size : 128;
      m.data.resize(n);
      m.scales.resize(size_t(fp8_blocks(rows, block) * fp8_blocks(cols, block)));
      fp8_quantize_blocks(values, rows, cols, block, block, m.data.data(), m.scales.data());
      m.matrix.block_scales = m.scales.data();
      m.matrix.block_rows = m.matrix.block_cols = block;
      m.matrix.block_stride = fp8_blocks(cols, block);
      break;
    }
    default: fail(ErrorCode::kUnsupported, "matmul weights cannot be {}", dtype_name(dtype));
  }
  m.matrix.data = m.data.data();
  m.matrix.dtype = dtype;
  m.matrix.rows = rows;
  m.matrix.cols = cols;
  return m;
}

}  // namespace moe::cpu
