#include "runtime/model/weight_matrix.h"

#include "runtime/core/error.h"

namespace moe::model {

cpu::WeightMatrix matrix_of(const Linear& linear) {
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
  Linear rows;
  rows.weight = linear.weight.slice_rows(begin, end);
  if (linear.quantized()) rows.scales = linear.scales.slice_rows(begin, end);
  return rows;
}

}  // namespace moe::model
