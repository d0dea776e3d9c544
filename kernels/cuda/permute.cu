#include "kernels/cuda/permute.h"

#include <algorithm>

namespace moe::cuda {
namespace {

// One block: thread e counts expert e's assignments, a scan gives the offsets, then thread e
// writes its assignments in ascending order (stable, deterministic, no atomics).
__global__ void sort_by_expert_kernel(const int32_t* expert_of, int64_t n, int n_experts, int32_t* order, int32_t* offsets) {
  extern __shared__ int32_t counts[];  // [n_experts + 1]
  for (int e = threadIdx.x; e < n_experts; e += blockDim.x) {
    int32_t c = 0;
    for (int64_t a = 0; a < n; ++a) c += expert_of[a] == e;
    counts[e + 1] = c;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    counts[0] = 0;
    for (int e = 0; e < n_experts; ++e) counts[e + 1] += counts[e];
  }
  __syncthreads();
  for (int e = threadIdx.x; e <= n_experts; e += blockDim.x) offsets[e] = counts[e];
  for (int e = threadIdx.x; e < n_experts; e += blockDim.x) {
    int32_t at = counts[e];
    for (int64_t a = 0; a < n; ++a)
      if (expert_of[a] == e) order[at++] = int32_t(a);
  }
}

__global__ void gather_kernel(const float* x, const int32_t* rows, int64_t hidden, float* out) {
  const float* src = x + int64_t(rows[blockIdx.x]) * hidden;
  float* dst = out + int64_t(blockIdx.x) * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = src[i];
}

__global__ void scatter_kernel(const float* x, const int32_t* rows, int64_t hidden, float* out) {
  const float* src = x + int64_t(blockIdx.x) * hidden;
  float* dst = out + int64_t(rows[blockIdx.x]) * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = src[i];
}

}  // namespace

cudaError_t sort_by_expert(const int32_t* expert_of, int64_t n_assignments, int n_experts, int32_t* order, int32_t* offsets,
                           cudaStream_t stream) {
  if (n_experts <= 0 || n_experts > 1024 || n_assignments < 0) return cudaErrorInvalidValue;
  const unsigned threads = unsigned(std::min(1024, (n_experts + 31) / 32 * 32));
  sort_by_expert_kernel<<<1, threads, sizeof(int32_t) * size_t(n_experts + 1), stream>>>(expert_of, n_assignments, n_experts,
                                                                                        order, offsets);
  return cudaGetLastError();
}

cudaError_t gather_rows(const float* x, const int32_t* rows, int64_t n, int64_t hidden, float* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (n > 2147483647) return cudaErrorInvalidValue;
  gather_kernel<<<unsigned(n), 256, 0, stream>>>(x, rows, hidden, out);
  return cudaGetLastError();
}

cudaError_t scatter_rows(const float* x, const int32_t* rows, int64_t n, int64_t hidden, float* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (n > 2147483647) return cudaErrorInvalidValue;
  scatter_kernel<<<unsigned(n), 256, 0, stream>>>(x, rows, hidden, out);
  return cudaGetLastError();
}

}  // namespace moe::cuda
