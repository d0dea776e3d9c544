#include "runtime/model/weight_matrix.h"

#include "kernels/cpu/fp8.h"
#include "runtime/core/error.h"

namespace moe::model {

cpu::WeightMatrix fp8_matrix(const void* data, int64_t rows, int64_t cols, const Tensor& block_scales, int block_rows,
                             int block_cols) {
  MOE_CHECK(block_rows > 0 && block_cols > 0 && block_scales.dtype() == DType::kF32 && block_scales.is_contiguous() &&
                block_scales.rank() == 2 && block_scales.dim(0) == cpu::fp8_blocks(rows, block_rows) &&
                block_scales.dim(1) == cpu::fp8_blocks(cols, block_cols),
            ErrorCode::kInternal, "an FP8 matrix's block scales do not match its {} x {} weight", rows, cols);
  cpu::WeightMatrix m;
  m.data = data;
  m.dtype = DType::kF8E4M3;
  m.rows = rows;
  m.cols = cols;
  m.block_scales = block_scales.data<float>();
  m.block_rows = block_rows;
  m.block_cols = block_cols;
  m.block_stride = block_scales.dim(1);
  return m;
}

cpu::WeightMatrix matrix_of(const Linear& linear) {
  if (linear.fp8())
    return fp8_matrix(linear.weight.raw(), linear.out_features(), linear.in_features(), linear.block_scales, linear.block_rows,
                      linear.block_cols);
  if (linear.mxfp4()) {
    MOE_CHECK(linear.weight.dtype() == DType::kMxfp4 && linear.exponents.dtype() == DType::kU8 && linear.exponents.is_contiguous() &&
                  linear.in_features() % 32 == 0 && linear.exponents.numel() == linear.out_features() * linear.in_features() / 32,
              ErrorCode::kInternal, "an MXFP4 matrix's exponents do not match its {} x {} weight", linear.out_features(),
              linear.in_features());
    cpu::WeightMatrix m;
    m.data = linear.weight.raw();
    m.dtype = DType::kMxfp4;
    m.rows = linear.out_features();
    m.cols = linear.in_features();
    m.exponents = linear.exponents.data<uint8_t>();
    return m;
  }
  cpu::WeightMatrix m = cpu::weight_matrix(linear.weight);
  if (linear.quantized()) {
    MOE_CHECK(linear.scales.dtype() == DType::kF32 && linear.scales.is_contiguous() &&
                  linear.scales.dim(0) == m.rows && m.cols % linear.scales.dim(1) == 0,
              ErrorCode::kInternal, "a quantised matrix's scales do not match its {} x {} weight", m.rows, m.cols);
    m.scales = linear.scales.data<float>();
    m.group_size = linear.group_size();
  }
  return m;
}

Linear weight_rows(const Linear& linear, int64_t begin, int64_t end) {
  MOE_CHECK(!linear.fp8(), ErrorCode::kInternal, "rows of an FP8 matrix are taken by matrix_rows");
  Linear rows;
  rows.weight = linear.weight.slice_rows(begin, end);
  if (linear.quantized()) rows.scales = linear.scales.slice_rows(begin, end);
  return rows;
}

cpu::WeightMatrix matrix_rows(const Linear& linear, int64_t begin, int64_t end) {
  if (!linear.fp8()) return matrix_of(weight_rows(linear, begin, end));
  MOE_CHECK(begin >= 0 && begin < end && end <= linear.out_features(), ErrorCode::kInternal, "rows [{}, {}) of a {}-row matrix",
            begin, end, linear.out_features());
  cpu::WeightMatrix m = matrix_of(linear);
  m.data = static_cast<const uint8_t*>(m.data) + begin * m.cols;
  m.rows = end - begin;
  m.block_row0 = begin;
  return m;
}

}  // namespace moe::model
