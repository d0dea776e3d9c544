#include "kernels/cuda/grouped_gemm.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "kernels/cuda/weight_unpack.cuh"

namespace moe::cuda {
namespace {

// A block computes a 64-token x 128-weight-row tile of one problem, 32 columns a stage, on the
// bf16 tensor cores (mma.sync m16n8k16, f32 accumulation): 8 warps, 2 along the tokens x 4 along
// the rows, each 32 x 32. The weights' values are exact in bf16 (bf16 itself, int8 and int4
// integers, e4m3 values; their scales are applied to each 16-column step's f32 sum), and each f32
// activation is split into three bf16 terms whose sum is the activation to its last bit or so, so
// a product is an f32 GEMM's to ~1e-7, at three tensor-core products a term: still ~10x the
// CUDA cores' f32 rate.
constexpr int kTileM = 64, kTileN = 128, kTileK = 32, kThreads = 256;
constexpr int kSteps = kTileK / 16;  // mma k-steps a stage
constexpr int kTerms = 3;
// A row of a stage in shared memory: 16 words of bf16 pairs, padded by 4 so that the 8 row
// addresses of each ldmatrix phase fall in distinct banks (and stay 16-byte aligned).
constexpr int kRowWords = kTileK / 2 + 4;
// Problems per launch: the batch travels as a __grid_constant__ kernel parameter (under 4 KiB).
constexpr int kMaxProblems = 44;

struct Problem {
  const uint8_t* w;
  const float* scales;
  const float* x;
  float* y;
  int64_t rows, cols, m;
  int group, block_rows, block_stride, tiles_m;  // ScaleGrid's, flat: 44 problems must fit the parameters
  uint32_t row0, col0;                           // fp8: a slice's place in its matrix's grid (valid_weights bounds them)
};

struct Batch {
  Problem p[kMaxProblems];
  int tile_begin[kMaxProblems + 1];  // the problems' first tiles in the grid, and the total
  int count;
};
static_assert(sizeof(Batch) <= 4000, "a launch's parameters must stay under 4 KiB");

__device__ inline uint32_t bf16_pair(float lo, float hi) {
  const __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);  // .x, the earlier column, in the low half
  return *reinterpret_cast<const uint32_t*>(&p);
}

// x = t0 + t1 + t2 (bf16 terms): the first two truncate (exact remainders, never an overflow), the
// third rounds what is left. Infinities and NaNs keep their class in the first term alone.
__device__ inline void split3(float x, float (&t)[kTerms]) {
  const uint32_t bits = __float_as_uint(x);
  if ((bits & 0x7F800000u) == 0x7F800000u) {
    t[0] = __uint_as_float((bits & 0xFFFF0000u) | ((bits & 0x007FFFFFu) ? 0x00400000u : 0u));
    t[1] = t[2] = 0.0f;
    return;
  }
  t[0] = __uint_as_float(bits & 0xFFFF0000u);
  const float r = x - t[0];
  t[1] = __uint_as_float(__float_as_uint(r) & 0xFFFF0000u);
  t[2] = r - t[1];  // rounded to bf16 when packed
}

__device__ inline void ldmatrix_x4(uint32_t (&r)[4], const uint32_t* at) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(at));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

__device__ inline void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// A stage's global reads, held in registers while the tensor cores work on the previous stage.
template <WeightFormat F>
struct Stage {
  static constexpr int kChunks = kTileN * kTileK / Chunk<F>::kValues;  // 16-byte weight chunks
  static constexpr int kChunksPerThread = (kChunks + kThreads - 1) / kThreads;
  float4 x[kTileM * kTileK / 4 / kThreads];
  uint4 w[kChunksPerThread];
  float scale;  // one (row, 16-column step) scale per thread: kTileN * kSteps == kThreads
};
static_assert(kTileN * kSteps == kThreads);

template <WeightFormat F>
__device__ inline void load_stage(const Problem& p, const ScaleGrid& grid, int64_t t0, int64_t r0, int64_t k0, Stage<F>& s) {
  constexpr int V = Chunk<F>::kValues, kChunksPerRow = kTileK / V;
  constexpr int kXPerThread = kTileM * kTileK / 4 / kThreads;
#pragma unroll
  for (int j = 0; j < kXPerThread; ++j) {
    const int i = int(threadIdx.x) + j * kThreads;
    const int t = i / (kTileK / 4), c = (i % (kTileK / 4)) * 4;
    // cols is a multiple of 8, so a float4 starting inside the row ends inside it.
    s.x[j] = t0 + t < p.m && k0 + c < p.cols ? __ldg(reinterpret_cast<const float4*>(p.x + (t0 + t) * p.cols + k0 + c))
                                             : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  const int64_t stride_bytes = row_bytes<F>(p.cols);
#pragma unroll
  for (int j = 0; j < Stage<F>::kChunksPerThread; ++j) {
    const int i = int(threadIdx.x) + j * kThreads;
    const int r = i / kChunksPerRow, c = (i % kChunksPerRow) * V;
    s.w[j] = i < Stage<F>::kChunks && r0 + r < p.rows && k0 + c < p.cols
                 ? __ldg(reinterpret_cast<const uint4*>(p.w + (r0 + r) * stride_bytes + row_bytes<F>(k0 + c)))
                 : make_uint4(0, 0, 0, 0);
  }
  if constexpr (F != WeightFormat::kBF16) {
    const int r = int(threadIdx.x) / kSteps, step = int(threadIdx.x) % kSteps;
    s.scale = r0 + r < p.rows && k0 + 16 * step < p.cols ? chunk_scale<F>(grid, r0 + r, k0 + 16 * step) : 0.0f;
  }
}

template <WeightFormat F>
__device__ inline void store_stage(const Stage<F>& s, uint32_t (*xs)[kTileM][kRowWords], uint32_t (*ws)[kRowWords],
                                   float (*ss)[kSteps]) {
  constexpr int V = Chunk<F>::kValues, kChunksPerRow = kTileK / V;
  constexpr int kXPerThread = kTileM * kTileK / 4 / kThreads;
#pragma unroll
  for (int j = 0; j < kXPerThread; ++j) {
    const int i = int(threadIdx.x) + j * kThreads;
    const int t = i / (kTileK / 4), word = (i % (kTileK / 4)) * 2;
    const float v[4] = {s.x[j].x, s.x[j].y, s.x[j].z, s.x[j].w};
    float terms[4][kTerms];
#pragma unroll
    for (int e = 0; e < 4; ++e) split3(v[e], terms[e]);
#pragma unroll
    for (int term = 0; term < kTerms; ++term)
      *reinterpret_cast<uint2*>(&xs[term][t][word]) =
          make_uint2(bf16_pair(terms[0][term], terms[1][term]), bf16_pair(terms[2][term], terms[3][term]));
  }
#pragma unroll
  for (int j = 0; j < Stage<F>::kChunksPerThread; ++j) {
    const int i = int(threadIdx.x) + j * kThreads;
    if (Stage<F>::kChunks % kThreads != 0 && i >= Stage<F>::kChunks) break;
    const int r = i / kChunksPerRow, word = (i % kChunksPerRow) * V / 2;
    if constexpr (F == WeightFormat::kBF16) {
      *reinterpret_cast<uint4*>(&ws[r][word]) = s.w[j];
    } else {
#pragma unroll
      for (int q = 0; q < V / 4; ++q) {  // the unscaled values (integers, e4m3's), exact in bf16
        float v[4];
        unpack4_unscaled<F>(s.w[j], q, v);
        *reinterpret_cast<uint2*>(&ws[r][word + 2 * q]) = make_uint2(bf16_pair(v[0], v[1]), bf16_pair(v[2], v[3]));
      }
    }
  }
  if constexpr (F != WeightFormat::kBF16) ss[threadIdx.x / kSteps][threadIdx.x % kSteps] = s.scale;
}

template <WeightFormat F>
__global__ void __launch_bounds__(kThreads, 2) grouped_gemm_kernel(const __grid_constant__ Batch batch) {
  constexpr bool kScaled = F != WeightFormat::kBF16;
  __shared__ __align__(16) uint32_t xs[kTerms][kTileM][kRowWords];  // tokens' terms, bf16 pairs along k
  __shared__ __align__(16) uint32_t ws[kTileN][kRowWords];          // weight rows, bf16 pairs along k
  __shared__ float ss[kTileN][kSteps];                              // each row's scale per 16-column step

  const int tile = int(blockIdx.x);
  int index = 0;
  while (index + 1 < batch.count && tile >= batch.tile_begin[index + 1]) ++index;
  const Problem& p = batch.p[index];
  const int local = tile - batch.tile_begin[index];
  const int64_t t0 = int64_t(local % p.tiles_m) * kTileM;  // neighbouring blocks share weights
  const int64_t r0 = int64_t(local / p.tiles_m) * kTileN;
  ScaleGrid grid{p.scales, p.cols, p.group, p.block_rows, p.block_stride, p.row0, p.col0};
  if constexpr (F == WeightFormat::kInt8 || F == WeightFormat::kInt4) grid.row_groups = p.cols / p.group;

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int wm = (warp % 2) * 32, wn = (warp / 2) * 32;  // the warp's first token and row in the tile
  float acc[2][4][4];  // [16-token tile][8-row tile][the mma's four outputs]
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  Stage<F> stage;
  load_stage<F>(p, grid, t0, r0, 0, stage);
  for (int64_t k0 = 0; k0 < p.cols; k0 += kTileK) {
    store_stage<F>(stage, xs, ws, ss);
    __syncthreads();
    if (k0 + kTileK < p.cols) load_stage<F>(p, grid, t0, r0, k0 + kTileK, stage);  // in flight under the products
#pragma unroll
    for (int step = 0; step < kSteps; ++step) {
      uint32_t a[kTerms][2][4], b[4][2];
#pragma unroll
      for (int term = 0; term < kTerms; ++term)
#pragma unroll
        for (int i = 0; i < 2; ++i)  // rows 0-15 of the 16-token tile, columns 0-7 then 8-15
          ldmatrix_x4(a[term][i], &xs[term][wm + 16 * i + lane % 16][8 * step + 4 * (lane / 16)]);
#pragma unroll
      for (int j = 0; j < 2; ++j) {  // two 8-row tiles, columns 0-7 and 8-15 of each
        uint32_t r[4];
        ldmatrix_x4(r, &ws[wn + 16 * j + lane % 8 + 8 * (lane / 16)][8 * step + 4 * ((lane / 8) % 2)]);
        b[2 * j][0] = r[0];
        b[2 * j][1] = r[1];
        b[2 * j + 1][0] = r[2];
        b[2 * j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          // The small terms first; a scaled format sums the step unscaled, then scales it once.
          float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
          float(&sum)[4] = kScaled ? part : acc[i][j];
#pragma unroll
          for (int term = kTerms - 1; term >= 0; --term) mma_bf16(sum, a[term][i], b[j][0], b[j][1]);
          if constexpr (kScaled) {
            const int n = wn + 8 * j + 2 * (lane % 4);  // outputs 0 and 2: row n; 1 and 3: row n + 1
            const float s0 = ss[n][step], s1 = ss[n + 1][step];
            acc[i][j][0] = fmaf(part[0], s0, acc[i][j][0]);
            acc[i][j][1] = fmaf(part[1], s1, acc[i][j][1]);
            acc[i][j][2] = fmaf(part[2], s0, acc[i][j][2]);
            acc[i][j][3] = fmaf(part[3], s1, acc[i][j][3]);
          }
        }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t t = t0 + wm + 16 * i + lane / 4 + 8 * (e / 2);
        const int64_t r = r0 + wn + 8 * j + 2 * (lane % 4) + e % 2;
        if (t < p.m && r < p.rows) p.y[t * p.rows + r] = acc[i][j][e];
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
                    grid.block_rows, int(grid.block_stride), int(tiles_m), uint32_t(grid.row0), uint32_t(grid.col0)};
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
        g.w.block_stride > INT_MAX)
      return cudaErrorInvalidValue;  // valid_weights' groups and blocks are whole 16-column steps: one scale a step
    by_format[int(g.w.format)].push_back(&g);
  }
  if (const cudaError_t rc = launch<WeightFormat::kBF16>(by_format[0], stream); rc != cudaSuccess) return rc;
  if (const cudaError_t rc = launch<WeightFormat::kInt8>(by_format[1], stream); rc != cudaSuccess) return rc;
  if (const cudaError_t rc = launch<WeightFormat::kInt4>(by_format[2], stream); rc != cudaSuccess) return rc;
  return launch<WeightFormat::kFp8>(by_format[3], stream);
}

}  // namespace moe::cuda
