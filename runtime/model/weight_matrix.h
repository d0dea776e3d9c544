#pragma once
// A loaded Linear as the matrix the kernels take: its dtype, and for int8/int4 weights their
// scales and group size (for FP8 ones their block scales), which a Tensor alone does not carry.
#include <cstdint>

#include "kernels/cpu/matmul.h"
#include "runtime/model/weights.h"

namespace moe::model {

cpu::WeightMatrix matrix_of(const Linear& linear);

// Rows [begin, end) of the weight and of its scales (DS-MoE's fused q, k, v); the bias is left out.
// Not for FP8 (its block grid does not slice by rows): matrix_rows.
Linear weight_rows(const Linear& linear, int64_t begin, int64_t end);

// The matrix of rows [begin, end), any dtype (an FP8 one placed in its block grid).
cpu::WeightMatrix matrix_rows(const Linear& linear, int64_t begin, int64_t end);

// The FP8 matrix of `data` [rows, cols] (e4m3 bytes) with block scales [ceil(rows / block_rows),
// ceil(cols / block_cols)] (f32), checked.
cpu::WeightMatrix fp8_matrix(const void* data, int64_t rows, int64_t cols, const Tensor& block_scales, int block_rows,
                             int block_cols);

}  // namespace moe::model
