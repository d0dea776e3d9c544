#include "runtime/cuda/device_matmul.h"

#include <algorithm>

#include "kernels/cuda/device.h"
#include "kernels/cuda/grouped_gemm.h"
#include "kernels/cuda/ops.h"
#include "runtime/core/error.h"

namespace moe::cuda {

DeviceWeights device_weights(const cpu::WeightMatrix& m) {
  DeviceWeights w;
  switch (m.dtype) {
    case DType::kBF16: w.format = WeightFormat::kBF16; break;
    case DType::kI8: w.format = WeightFormat::kInt8; break;
    case DType::kI4: w.format = WeightFormat::kInt4; break;
    case DType::kF8E4M3: w.format = WeightFormat::kFp8; break;
    default: fail(ErrorCode::kUnsupported, "the CUDA kernels take bf16, int8, int4 or fp8 weights, not {}", dtype_name(m.dtype));
  }
  w.data = m.data;
  w.scales = m.scales;
  w.rows = m.rows;
  w.cols = m.cols;
  w.group_size = m.group_size;
  if (w.format == WeightFormat::kFp8) {
    // One scale per 16-byte load: blocks and a slice's place in its grid in whole 16-column steps.
    MOE_CHECK(m.block_scales != nullptr && m.block_rows > 0 && m.block_cols > 0 && m.block_cols % 16 == 0 &&
                  m.block_col0 % 16 == 0,
              ErrorCode::kUnsupported,
              "the CUDA kernels take fp8 blocks of a multiple of 16 columns starting on a 16-column step, not {}x{} at column {}",
              m.block_rows, m.block_cols, m.block_col0);
    w.scales = m.block_scales;
    w.block_rows = m.block_rows;
    w.block_cols = m.block_cols;
    w.block_stride = m.block_stride;
    w.block_row0 = m.block_row0;
    w.block_col0 = m.block_col0;
  }
  return w;
}

DeviceMatmul::DeviceMatmul(cudaStream_t stream) : stream_(stream) {}

void DeviceMatmul::run(const DeviceWeights& w, const float* x, int64_t m, float* y, const float* bias) {
  if (m < kGemmMinRows) {
    check(expert_gemv_rows(w, x, m, y, stream_), "expert_gemv");
  } else {
    const GemmProblem problem{w, x, y, m};
    check(grouped_expert_gemm(&problem, 1, stream_), "grouped_expert_gemm");
  }
  if (bias) check(add_bias(y, bias, m, w.rows, stream_), "add_bias");
}

}  // namespace moe::cuda
