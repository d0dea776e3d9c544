#pragma once
// y[t, r] = sum_c x[t, c] * W[r, c] for a few tokens (decode), with W in bf16, int8 or int4
// (the group-quantised layout of kernels/cpu/quantize.h) or FP8 e4m3 with f32 block scales
// (kernels/cpu/fp8.h, DeepSeek-V3's weight_scale_inv), dequantised in the inner loop
// (int8/int4/fp8: the products of each 16-byte chunk summed, then scaled once).
// Launchers return the CUDA error of the launch; callers check it.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::cuda {

enum class WeightFormat { kBF16, kInt8, kInt4, kFp8 };

struct DeviceWeights {
  const void* data = nullptr;  // device memory
  const float* scales = nullptr;  // int8/int4: [rows, cols / group_size]; fp8: the block grid below
  WeightFormat format = WeightFormat::kBF16;
  int64_t rows = 0;
  int64_t cols = 0;  // whole 16-byte chunks per row (and whole int8/int4 groups)
  int group_size = 0;  // int8/int4
  // fp8: element (r, c) is value(data[r][c]) x scales[((r + block_row0) / block_rows) * block_stride +
  // (c + block_col0) / block_cols], the grid ceil-divided at the edges as in the checkpoint (kernels/cpu/fp8.h;
  // the offsets place a slice of a bigger matrix in its grid). block_cols and block_col0 are multiples
  // of 16 so that a chunk lies under one scale. The grouped GEMM takes no offsets (experts have their own grids).
  int block_rows = 0, block_cols = 0;
  int64_t block_stride = 0;  // scales from one block row to the next
  int64_t block_row0 = 0, block_col0 = 0;
};

inline constexpr int kMaxGemvTokens = 8;

// x: [m, cols] f32, y: [m, rows] f32, 1 <= m <= kMaxGemvTokens.
cudaError_t expert_gemv(const DeviceWeights& w, const float* x, int m, float* y, cudaStream_t stream);
// Any m >= 0 rows, in passes of kMaxGemvTokens (a row's result is the same in any pass).
cudaError_t expert_gemv_rows(const DeviceWeights& w, const float* x, int64_t m, float* y, cudaStream_t stream);

// out [rows, cols] f32 = the weights widened (bf16) or dequantised (q * scale, fp8 value * block scale): the operand of an
// f32 GEMM when many tokens share an expert (prefill), so a row's values are exactly the GEMV's.
cudaError_t dequantize_weights(const DeviceWeights& w, float* out, cudaStream_t stream);

}  // namespace moe::cuda
