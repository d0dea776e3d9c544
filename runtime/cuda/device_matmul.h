#pragma once
// y = x W^T on one CUDA stream, all device memory, for the dense products (CudaLinear): the GEMV
// (bf16/int8/int4/fp8, dequantised in its loop) for fewer than kGemmMinRows rows, in passes of eight;
// from kGemmMinRows rows (prefill) the grouped GEMM with one problem, on the tensor cores, reading
// the weights where they are (no f32 copy of the matrix: DeepSeek-V3's lm head would take 3.7 GB).
// Each row's result depends only on the row count of the call, never on the budget or schedule.
#include <cstdint>
#include <memory>

#include "kernels/cpu/matmul.h"
#include "kernels/cuda/expert_gemv.h"
#include "runtime/cuda/cuda_resources.h"

namespace moe::cuda {

// The device view of a weight matrix whose data (and scales) are in device memory. Throws
// moe::Error(kUnsupported) for dtypes the kernels do not take (f32, f16, mxfp4) and for fp8 blocks
// (or a slice's column offset in its grid) that are not whole 16-column chunks.
DeviceWeights device_weights(const cpu::WeightMatrix& m);

class DeviceMatmul {
 public:
  static constexpr int64_t kGemmMinRows = 32;
  explicit DeviceMatmul(cudaStream_t stream);
  // bias: [w.rows] device memory or null.
  void run(const DeviceWeights& w, const float* x, int64_t m, float* y, const float* bias = nullptr);

 private:
  cudaStream_t stream_;
};

}  // namespace moe::cuda
