#include "kernels/cuda/expert_gemv.h"

#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/cuda/weight_unpack.cuh"

namespace moe::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 4;
constexpr int kRowsPerWarp = 4;  // each x value a lane loads serves four rows
constexpr int kUnroll = 2;  // chunks of each row a lane has in flight

// A warp per kRowsPerWarp rows, its lanes striding over the rows' 16-byte chunks; each chunk is
// widened a quarter at a time against the tokens' x, its products summed before their one scale
// (int8/int4/fp8: a multiply per chunk instead of per value). A (row, token) sum takes its terms
// in the same order whatever m, the rows beside it or the launch: chunk by chunk, column by
// column, then the warp's shuffle tree.
template <WeightFormat F, int M>
__global__ void __launch_bounds__(kWarp * kWarpsPerBlock)
    gemv_kernel(const uint8_t* __restrict__ w, const ScaleGrid grid, int64_t rows, int64_t cols, const float* __restrict__ x,
                float* __restrict__ y) {
  constexpr int V = Chunk<F>::kValues, R = kRowsPerWarp;
  const int64_t first = (int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp) * R;
  const int lane = threadIdx.x % kWarp;
  if (first >= rows) return;
  const uint4* wr[R];
#pragma unroll
  for (int r = 0; r < R; ++r)  // rows past the end repeat the last one and are not stored
    wr[r] = reinterpret_cast<const uint4*>(w + min(first + r, rows - 1) * row_bytes<F>(cols));
  const int64_t steps = cols / V;  // 16-byte chunks in a row
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < M; ++t) acc[r][t] = 0.0f;
  for (int64_t s0 = lane; s0 < steps; s0 += kWarp * kUnroll) {
    uint4 raw[kUnroll][R];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r) raw[u][r] = s0 + u * kWarp < steps ? __ldg(wr[r] + s0 + u * kWarp) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c0 = (s0 + u * kWarp) * V;
      if (s0 + u * kWarp >= steps) break;
      constexpr bool kScaled = F != WeightFormat::kBF16;
      float sum[R][M];  // this chunk's products before the scale (bf16: straight into acc)
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < M; ++t) sum[r][t] = kScaled ? 0.0f : acc[r][t];
#pragma unroll
      for (int i = 0; i < V / 4; ++i) {
        float wv[R][4];
#pragma unroll
        for (int r = 0; r < R; ++r) unpack4_unscaled<F>(raw[u][r], i, wv[r]);
#pragma unroll
        for (int t = 0; t < M; ++t) {
          const float4 xx = __ldg(reinterpret_cast<const float4*>(x + t * cols + c0) + i);
#pragma unroll
          for (int r = 0; r < R; ++r) {
            sum[r][t] = fmaf(xx.x, wv[r][0], sum[r][t]);
            sum[r][t] = fmaf(xx.y, wv[r][1], sum[r][t]);
            sum[r][t] = fmaf(xx.z, wv[r][2], sum[r][t]);
            sum[r][t] = fmaf(xx.w, wv[r][3], sum[r][t]);
          }
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float scale = chunk_scale<F>(grid, min(first + r, rows - 1), c0);
#pragma unroll
        for (int t = 0; t < M; ++t) acc[r][t] = kScaled ? fmaf(sum[r][t], scale, acc[r][t]) : sum[r][t];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < M; ++t) {
      float v = acc[r][t];
#pragma unroll
      for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
      if (lane == 0 && first + r < rows) y[t * rows + first + r] = v;
    }
}

template <WeightFormat F>
cudaError_t launch(const DeviceWeights& w, const float* x, int m, float* y, cudaStream_t stream) {
  constexpr int64_t rows_per_block = kWarpsPerBlock * kRowsPerWarp;
  const dim3 grid(unsigned((w.rows + rows_per_block - 1) / rows_per_block)), block(kWarp * kWarpsPerBlock);
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
