#pragma once
// y_p = x_p W_p^T for a layer's experts in one launch (prefill): the grouped expert GEMM, f32
// activations and accumulation over bf16, int8, int4 or fp8 weights widened in shared memory by the
// GEMV's own unpack, so no f32 copy of a weight matrix is ever made. Each output is one fmaf
// chain over the columns in order, so a row's result does not depend on how many rows share its
// problem, where its tile falls or which problems are launched beside it.
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

// Problems in any mix of formats and shapes (one launch per format and per 48 problems).
// Returns cudaErrorInvalidValue for a malformed problem (an fp8 slice with block offsets among
// them: an expert's matrices have their own grids), else the launches' error.
cudaError_t grouped_expert_gemm(const GemmProblem* problems, int count, cudaStream_t stream);

}  // namespace moe::cuda
