#include "kernels/cuda/expert_gemv.h"

#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/cuda/weight_unpack.cuh"

namespace moe::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 4;  // one warp per output row

template <WeightFormat F, int M>
__global__ void __launch_bounds__(kWarp * kRowsPerBlock)
    gemv_kernel(const uint8_t* __restrict__ w, const ScaleGrid grid, int64_t rows, int64_t cols, const float* __restrict__ x,
                float* __restrict__ y) {
  constexpr int V = Chunk<F>::kValues;
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= rows) return;
  const uint4* wr = reinterpret_cast<const uint4*>(w + row * row_bytes<F>(cols));
  const int64_t steps = cols / V;  // 16-byte chunks in the row
  float acc[M];
#pragma unroll
  for (int t = 0; t < M; ++t) acc[t] = 0.0f;
  for (int64_t s = lane; s < steps; s += kWarp) {
    const uint4 raw = __ldg(wr + s);
    const int64_t c0 = s * V;
    const float scale = chunk_scale<F>(grid, row, c0);
    float wv[V];
    unpack<F>(raw, scale, wv);
#pragma unroll
    for (int t = 0; t < M; ++t) {
      const float4* xv = reinterpret_cast<const float4*>(x + t * cols + c0);
#pragma unroll
      for (int i = 0; i < V / 4; ++i) {
        const float4 xx = __ldg(xv + i);
        acc[t] = fmaf(xx.x, wv[4 * i], acc[t]);
        acc[t] = fmaf(xx.y, wv[4 * i + 1], acc[t]);
        acc[t] = fmaf(xx.z, wv[4 * i + 2], acc[t]);
        acc[t] = fmaf(xx.w, wv[4 * i + 3], acc[t]);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < M; ++t) {
    float v = acc[t];
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (lane == 0) y[t * rows + row] = v;
  }
}

template <WeightFormat F>
cudaError_t launch(const DeviceWeights& w, const float* x, int m, float* y, cudaStream_t stream) {
  const dim3 grid(unsigned((w.rows + kRowsPerBlock - 1) / kRowsPerBlock)), block(kWarp * kRowsPerBlock);
  const auto* data = static_cast<const uint8_t*>(w.data);
  switch (m) {
#define MOE_GEMV_CASE(M) \
  case M: gemv_kernel<F, M><<<grid, block, 0, stream>>>(data, scale_grid(w), w.rows, w.cols, x, y); break;
    MOE_GEMV_CASE(1)
    MOE_GEMV_CASE(2)
    MOE_GEMV_CASE(3)
    MOE_GEMV_CASE(4)
    MOE_GEMV_CASE(5)
    MOE_GEMV_CASE(6)
    MOE_GEMV_CASE(7)
    MOE_GEMV_CASE(8)
#undef MOE_GEMV_CASE
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

// One 16-byte chunk of a row per thread, widened by the GEMV's own unpack.
template <WeightFormat F>
__global__ void dequantize_kernel(const uint8_t* __restrict__ w, const ScaleGrid grid, int64_t rows, int64_t cols,
                                  float* __restrict__ out) {
  constexpr int V = Chunk<F>::kValues;
  const int64_t chunks = rows * (cols / V);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < chunks; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c0 = i * V;  // element index in the flattened matrix (rows are whole chunks)
    const float scale = chunk_scale<F>(grid, c0 / cols, c0 % cols);
    float v[V];
    unpack<F>(__ldg(reinterpret_cast<const uint4*>(w) + i), scale, v);
#pragma unroll
    for (int j = 0; j < V; ++j) out[c0 + j] = v[j];
  }
}

template <WeightFormat F>
cudaError_t launch_dequantize(const DeviceWeights& w, float* out, cudaStream_t stream) {
  const int64_t chunks = w.rows * (w.cols / Chunk<F>::kValues);
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>((chunks + threads - 1) / threads, 65535));
  dequantize_kernel<F><<<blocks, threads, 0, stream>>>(static_cast<const uint8_t*>(w.data), scale_grid(w), w.rows, w.cols, out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t dequantize_weights(const DeviceWeights& w, float* out, cudaStream_t stream) {
  if (!valid_weights(w) || out == nullptr) return cudaErrorInvalidValue;
  switch (w.format) {
    case WeightFormat::kBF16: return launch_dequantize<WeightFormat::kBF16>(w, out, stream);
    case WeightFormat::kInt8: return launch_dequantize<WeightFormat::kInt8>(w, out, stream);
    case WeightFormat::kInt4: return launch_dequantize<WeightFormat::kInt4>(w, out, stream);
    case WeightFormat::kFp8: return launch_dequantize<WeightFormat::kFp8>(w, out, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t expert_gemv(const DeviceWeights& w, const float* x, int m, float* y, cudaStream_t stream) {
  if (!valid_weights(w) || m < 1 || m > kMaxGemvTokens) return cudaErrorInvalidValue;
  switch (w.format) {
    case WeightFormat::kBF16: return launch<WeightFormat::kBF16>(w, x, m, y, stream);
    case WeightFormat::kInt8: return launch<WeightFormat::kInt8>(w, x, m, y, stream);
    case WeightFormat::kInt4: return launch<WeightFormat::kInt4>(w, x, m, y, stream);
    case WeightFormat::kFp8: return launch<WeightFormat::kFp8>(w, x, m, y, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t expert_gemv_rows(const DeviceWeights& w, const float* x, int64_t m, float* y, cudaStream_t stream) {
  for (int64_t begin = 0; begin < m; begin += kMaxGemvTokens) {
    const int n = int(std::min<int64_t>(kMaxGemvTokens, m - begin));
    if (const cudaError_t rc = expert_gemv(w, x + begin * w.cols, n, y + begin * w.rows, stream); rc != cudaSuccess) return rc;
  }
  return cudaSuccess;
}

}  // namespace moe::cuda
