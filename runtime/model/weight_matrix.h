#pragma once
// A loaded Linear as the matrix the kernels take: its dtype, and for int8/int4 weights their
// scales and group size, which a Tensor alone does not carry.
#include <cstdint>

#include "kernels/cpu/matmul.h"
#include "runtime/model/weights.h"

namespace moe::model {

cpu::WeightMatrix matrix_of(const Linear& linear);

// Rows [begin, end) of the weight and of its scales (DS-MoE's fused q, k, v); the bias is left out.
Linear weight_rows(const Linear& linear, int64_t begin, int64_t end);

}  // namespace moe::model
