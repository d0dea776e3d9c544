#pragma once
// Token permutation for expert compute on the device: the routing's (token, expert) assignments
// sorted by expert, so each expert's rows are contiguous (a grouped GEMM's operand), and back.
// The order is the CPU's model::group_by_expert: experts ascending, then assignments ascending.
// Launchers return the launch's CUDA error; pointers are device memory.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::cuda {

// expert_of [n_assignments] (values in [0, n_experts)) -> order [n_assignments]: the assignment
// indices sorted by expert, stable; offsets [n_experts + 1]: expert e's rows are
// order[offsets[e] .. offsets[e + 1]). n_experts <= 1024.
cudaError_t sort_by_expert(const int32_t* expert_of, int64_t n_assignments, int n_experts, int32_t* order, int32_t* offsets,
                           cudaStream_t stream);
// out [n, hidden]: out[i] = x[rows[i]] (the permute, with rows[i] = the token of order[i]).
cudaError_t gather_rows(const float* x, const int32_t* rows, int64_t n, int64_t hidden, float* out, cudaStream_t stream);
// out [n, hidden]: out[rows[i]] = x[i] (the unpermute, before the weighted combine).
cudaError_t scatter_rows(const float* x, const int32_t* rows, int64_t n, int64_t hidden, float* out, cudaStream_t stream);

}  // namespace moe::cuda
