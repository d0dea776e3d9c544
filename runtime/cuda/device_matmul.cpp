#include "runtime/cuda/device_matmul.h"

#include <algorithm>

#include "kernels/cuda/device.h"
#include "kernels/cuda/ops.h"
#include "runtime/core/error.h"

namespace moe::cuda {

DeviceWeights device_weights(const cpu::WeightMatrix& m) {
  DeviceWeights w;
  switch (m.dtype) {
    case DType::kBF16: w.format = WeightFormat::kBF16; break;
    case DType::kI8: w.format = WeightFormat::kInt8; break;
    case DType::kI4: w.format = WeightFormat::kInt4; break;
    default: fail(ErrorCode::kUnsupported, "the CUDA kernels take bf16, int8 or int4 weights, not {}", dtype_name(m.dtype));
  }
  w.data = m.data;
  w.scales = m.scales;
  w.rows = m.rows;
  w.cols = m.cols;
  w.group_size = m.group_size;
  return w;
}

DeviceMatmul::DeviceMatmul(cudaStream_t stream) : stream_(stream), blas_(stream) {}

void DeviceMatmul::run(const DeviceWeights& w, const float* x, int64_t m, float* y, const float* bias) {
  if (m < kGemmMinRows) {
    check(expert_gemv_rows(w, x, m, y, stream_), "expert_gemv");
  } else {
    const uint64_t need = sizeof(float) * uint64_t(w.rows) * uint64_t(w.cols);
    if (widened_.bytes() < need) {
      check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");  // the old buffer may still be read
      widened_.ensure(need);
    }
    check(dequantize_weights(w, widened_.get<float>(), stream_), "dequantize_weights");
    // Row-major y = x W^T is column-major y^T = W x^T: W (row-major [rows, cols]) is the
    // column-major [cols, rows] matrix, transposed.
    const float one = 1.0f, zero = 0.0f;
    check_cublas(cublasSgemm(blas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, int(w.rows), int(m), int(w.cols), &one, widened_.get<float>(),
                             int(w.cols), x, int(w.cols), &zero, y, int(w.rows)),
                 "cublasSgemm");
  }
  if (bias) check(add_bias(y, bias, m, w.rows, stream_), "add_bias");
}

}  // namespace moe::cuda
