#pragma once
// y[t, r] = sum_c x[t, c] * W[r, c] for a few tokens (decode), with W in bf16, int8 or int4
// (the group-quantised layout of kernels/cpu/quantize.h, dequantised in the inner loop).
// Launchers return the CUDA error of the launch; callers check it.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::cuda {

enum class WeightFormat { kBF16, kInt8, kInt4 };

struct DeviceWeights {
  const void* data = nullptr;  // device memory
  const float* scales = nullptr;  // int8/int4: [rows, cols / group_size]
  WeightFormat format = WeightFormat::kBF16;
  int64_t rows = 0;
  int64_t cols = 0;  // a multiple of 32 (and of the group size)
  int group_size = 0;
};

inline constexpr int kMaxGemvTokens = 8;

// x: [m, cols] f32, y: [m, rows] f32, 1 <= m <= kMaxGemvTokens.
cudaError_t expert_gemv(const DeviceWeights& w, const float* x, int m, float* y, cudaStream_t stream);
// Any m >= 0 rows, in passes of kMaxGemvTokens (a row's result is the same in any pass).
cudaError_t expert_gemv_rows(const DeviceWeights& w, const float* x, int64_t m, float* y, cudaStream_t stream);

// out [rows, cols] f32 = the weights widened (bf16) or dequantised (q * scale): the operand of an
// f32 GEMM when many tokens share an expert (prefill), so a row's values are exactly the GEMV's.
cudaError_t dequantize_weights(const DeviceWeights& w, float* out, cudaStream_t stream);

}  // namespace moe::cuda
