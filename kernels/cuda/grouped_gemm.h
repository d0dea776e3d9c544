#pragma once
// y_p = x_p W_p^T for a layer's experts in one launch (prefill): the grouped expert GEMM on the
// bf16 tensor cores over bf16, int8, int4 or fp8 weights widened in shared memory (their values
// are exact in bf16; int8/int4/fp8 scales multiply each 16-column step's sum), f32 activations
// split into three bf16 terms, f32 accumulation: an f32 GEMM's result to ~1e-7, not its bits. A
// row's result depends only on its own activations and weights, in a fixed order over the
// columns, never on how many rows share its problem, where its tile falls or which problems are
// launched beside it.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/expert_gemv.h"

namespace moe::cuda {

struct GemmProblem {
  DeviceWeights w;           // device memory, as for expert_gemv
  const float* x = nullptr;  // [m, w.cols], 16-byte aligned
  float* y = nullptr;        // [m, w.rows]
  int64_t m = 0;             // 0 is allowed (nothing to do)
};

// Problems in any mix of formats and shapes (one launch per format and per 44 problems); fp8
// slices of a bigger matrix's grid (block offsets) as the GEMV takes them. Returns
// cudaErrorInvalidValue for a malformed problem, else the launches' error.
cudaError_t grouped_expert_gemm(const GemmProblem* problems, int count, cudaStream_t stream);

}  // namespace moe::cuda
