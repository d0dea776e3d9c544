#include "kernels/cuda/grouped_gemm.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "kernels/cuda/weight_unpack.cuh"

namespace moe::cuda {
namespace {

// A block computes a 64-token x 64-weight-row tile of one problem, 32 columns at a time; each of
// its 256 threads owns 4 x 4 outputs, strided by 16 so that its shared-memory reads are
// broadcasts (tokens) or 16 consecutive words (weight rows).
constexpr int kTileM = 64, kTileN = 64, kTileK = 32, kThreads = 256, kPer = 4, kStride = 16;
constexpr int kPad = 1;  // staggers the transposing stores across the banks
// Problems per launch: the batch travels as a __grid_constant__ kernel parameter (under 4 KiB).
constexpr int kMaxProblems = 48;

struct Problem {
  const uint8_t* w;
  const float* scales;
  const float* x;
  float* y;
  int64_t rows, cols, m;
  int group, block_rows, block_stride, tiles_m;  // ScaleGrid's, flat: 48 problems must fit the parameters
};

struct Batch {
  Problem p[kMaxProblems];
  int tile_begin[kMaxProblems + 1];  // the problems' first tiles in the grid, and the total
  int count;
};
static_assert(sizeof(Batch) <= 4000, "a launch's parameters must stay under 4 KiB");

template <WeightFormat F>
__global__ void __launch_bounds__(kThreads) grouped_gemm_kernel(const __grid_constant__ Batch batch) {
  constexpr int V = Chunk<F>::kValues;
  constexpr int kChunksPerRow = kTileK / V;
  __shared__ float xs[kTileK][kTileM + kPad];  // transposed: xs[k][token]
  __shared__ float ws[kTileK][kTileN + kPad];  // transposed: ws[k][weight row]

  const int tile = int(blockIdx.x);
  int index = 0;
  while (index + 1 < batch.count && tile >= batch.tile_begin[index + 1]) ++index;
  const Problem& p = batch.p[index];
  const int local = tile - batch.tile_begin[index];
  const int64_t t0 = int64_t(local % p.tiles_m) * kTileM;  // neighbouring blocks share weights
  const int64_t r0 = int64_t(local / p.tiles_m) * kTileN;
  const int tx = int(threadIdx.x) % kStride, ty = int(threadIdx.x) / kStride;
  const int64_t stride_bytes = row_bytes<F>(p.cols);
  ScaleGrid grid{p.scales, p.cols, p.group, p.block_rows, p.block_stride};
  if constexpr (F == WeightFormat::kInt8 || F == WeightFormat::kInt4) grid.row_groups = p.cols / p.group;

  float acc[kPer][kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i)
#pragma unroll
    for (int j = 0; j < kPer; ++j) acc[i][j] = 0.0f;

  for (int64_t k0 = 0; k0 < p.cols; k0 += kTileK) {
    // Activations: 64 tokens x 32 columns as float4s (cols is a multiple of 8), zero outside.
    for (int i = int(threadIdx.x); i < kTileM * kTileK / 4; i += kThreads) {
      const int t = i / (kTileK / 4), c = (i % (kTileK / 4)) * 4;
      float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (t0 + t < p.m && k0 + c < p.cols) v = __ldg(reinterpret_cast<const float4*>(p.x + (t0 + t) * p.cols + k0 + c));
      xs[c][t] = v.x;
      xs[c + 1][t] = v.y;
      xs[c + 2][t] = v.z;
      xs[c + 3][t] = v.w;
    }
    // Weights: 64 rows x 32 columns, whole chunks (a row holds whole chunks), widened here.
    for (int i = int(threadIdx.x); i < kTileN * kChunksPerRow; i += kThreads) {
      const int r = i / kChunksPerRow, c = (i % kChunksPerRow) * V;
      float v[V];
      if (r0 + r < p.rows && k0 + c < p.cols) {
        const uint8_t* chunk = p.w + (r0 + r) * stride_bytes + row_bytes<F>(k0 + c);
        const float scale = chunk_scale<F>(grid, r0 + r, k0 + c);
        unpack<F>(__ldg(reinterpret_cast<const uint4*>(chunk)), scale, v);
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) v[j] = 0.0f;
      }
#pragma unroll
      for (int j = 0; j < V; ++j) ws[c + j][r] = v[j];
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTileK; ++k) {
      float a[kPer], b[kPer];
#pragma unroll
      for (int i = 0; i < kPer; ++i) a[i] = xs[k][ty + kStride * i];
#pragma unroll
      for (int j = 0; j < kPer; ++j) b[j] = ws[k][tx + kStride * j];
#pragma unroll
      for (int i = 0; i < kPer; ++i)
#pragma unroll
        for (int j = 0; j < kPer; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int64_t t = t0 + ty + kStride * i;
    if (t >= p.m) continue;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int64_t r = r0 + tx + kStride * j;
      if (r < p.rows) p.y[t * p.rows + r] = acc[i][j];
    }
  }
}

template <WeightFormat F>
cudaError_t launch(const std::vector<const GemmProblem*>& problems, cudaStream_t stream) {
  for (size_t begin = 0; begin < problems.size(); begin += kMaxProblems) {
    const int count = int(std::min<size_t>(kMaxProblems, problems.size() - begin));
    Batch batch{};
    int64_t tiles = 0;
    for (int i = 0; i < count; ++i) {
      const GemmProblem& g = *problems[begin + size_t(i)];
      const int64_t tiles_m = (g.m + kTileM - 1) / kTileM, tiles_n = (g.w.rows + kTileN - 1) / kTileN;
      const ScaleGrid grid = scale_grid(g.w);
      batch.p[i] = {static_cast<const uint8_t*>(g.w.data), g.w.scales, g.x, g.y, g.w.rows, g.w.cols, g.m, grid.group,
                    grid.block_rows, int(grid.block_stride), int(tiles_m)};
      batch.tile_begin[i] = int(tiles);
      tiles += tiles_m * tiles_n;
      if (tiles > INT_MAX) return cudaErrorInvalidValue;
    }
    batch.tile_begin[count] = int(tiles);
    batch.count = count;
    grouped_gemm_kernel<F><<<unsigned(tiles), kThreads, 0, stream>>>(batch);
    if (const cudaError_t rc = cudaGetLastError(); rc != cudaSuccess) return rc;
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t grouped_expert_gemm(const GemmProblem* problems, int count, cudaStream_t stream) {
  if (count < 0 || (count > 0 && problems == nullptr)) return cudaErrorInvalidValue;
  std::vector<const GemmProblem*> by_format[4];
  for (int i = 0; i < count; ++i) {
    const GemmProblem& g = problems[i];
    if (g.m < 0) return cudaErrorInvalidValue;
    if (g.m == 0) continue;
    if (!valid_weights(g.w) || g.x == nullptr || g.y == nullptr || reinterpret_cast<uintptr_t>(g.x) % 16 != 0 ||
        g.w.block_stride > INT_MAX || g.w.block_row0 != 0 || g.w.block_col0 != 0)
      return cudaErrorInvalidValue;
    by_format[int(g.w.format)].push_back(&g);
  }
  if (const cudaError_t rc = launch<WeightFormat::kBF16>(by_format[0], stream); rc != cudaSuccess) return rc;
  if (const cudaError_t rc = launch<WeightFormat::kInt8>(by_format[1], stream); rc != cudaSuccess) return rc;
  if (const cudaError_t rc = launch<WeightFormat::kInt4>(by_format[2], stream); rc != cudaSuccess) return rc;
  return launch<WeightFormat::kFp8>(by_format[3], stream);
}

}  // namespace moe::cuda
