#pragma once
// The matmul's MXFP4 path (internal to kernels/cpu; formats in mxfp4.h): rows [r0, r1) of
// y = x W^T (+ b), each weight row widened to f32 once (exactly) and dotted with every token in
// matmul.h's 32 lanes, so the bits depend only on the number of columns.
#include "kernels/cpu/matmul_paths.h"

namespace moe::cpu::detail {

void rows_mxfp4(const MatmulJob& job, int64_t r0, int64_t r1);

}  // namespace moe::cpu::detail
