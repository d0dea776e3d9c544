#include "runtime/cuda/cuda_linear.h"

#include <cstring>

#include "kernels/cuda/device.h"
#include "runtime/core/error.h"

namespace moe::cuda {

CudaLinear::CudaLinear(DeviceArena& arena) : arena_(arena), device_(select_device(arena.device())) {
  matmul_ = std::make_unique<DeviceMatmul>(stream_.get());
}

CudaLinear::~CudaLinear() {
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_.get());
}

const CudaLinear::Resident& CudaLinear::resident(const cpu::WeightMatrix& w, const float* bias) {
  auto& slot = resident_[std::make_tuple(w.data, w.rows, w.cols, bias)];
  if (slot) return *slot;
  slot = std::make_unique<Resident>();
  // bf16, or fp8 with its block scales (DeepSeek-V3's attention and dense MLPs), in whole rows;
  // the rest (f32, f16, int8/int4 dense parts, strided views) stays on the CPU.
  const bool fp8 = w.dtype == DType::kF8E4M3 && w.block_scales != nullptr;
  const bool rows_whole = w.row_stride == 0 || w.row_stride == w.cols;
  if (!rows_whole || w.scales != nullptr || !((w.dtype == DType::kBF16 && w.cols % 8 == 0) || fp8)) return *slot;
  if (fp8 && (w.cols % 16 != 0 || w.block_cols % 16 != 0 || w.block_col0 % 16 != 0)) return *slot;  // the kernels' loads
  const uint64_t weight_bytes = dtype_bytes(w.dtype, size_t(w.rows * w.cols));
  constexpr uint64_t kAlign = 256;  // the scales and the bias after the weights, in the same arena piece
  const auto aligned = [](uint64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; };
  // fp8: the grid's rows that cover the matrix's rows (a slice of a bigger matrix takes its own).
  const int64_t grid_row = fp8 ? w.block_row0 / w.block_rows : 0;
  const int64_t grid_rows = fp8 ? (w.block_row0 + w.rows - 1) / w.block_rows - grid_row + 1 : 0;
  const uint64_t scales_at = aligned(weight_bytes), scale_bytes = sizeof(float) * uint64_t(grid_rows * w.block_stride);
  const uint64_t bias_at = scales_at + aligned(scale_bytes);
  auto block = arena_.try_allocate(bias_at + (bias ? sizeof(float) * uint64_t(w.rows) : 0));
  if (!block) return *slot;  // no room left: stays on the CPU
  check(cudaMemcpy(block->get(), w.data, weight_bytes, cudaMemcpyHostToDevice), "cudaMemcpy (resident weights)");
  if (fp8) {
    check(cudaMemcpy(block->get() + scales_at, w.block_scales + grid_row * w.block_stride, scale_bytes, cudaMemcpyHostToDevice),
          "cudaMemcpy (block scales)");
    slot->block_scales = reinterpret_cast<const float*>(block->get() + scales_at);
    slot->block_row0 = w.block_row0 - grid_row * w.block_rows;
  }
  if (bias) {
    check(cudaMemcpy(block->get() + bias_at, bias, sizeof(float) * uint64_t(w.rows), cudaMemcpyHostToDevice), "cudaMemcpy (bias)");
    slot->bias = reinterpret_cast<const float*>(block->get() + bias_at);
  }
  resident_bytes_ += block->bytes();
  slot->block = std::move(*block);
  return *slot;
}

void CudaLinear::matmul(const float* x, int64_t m, const cpu::WeightMatrix& w, float* y, const float* bias) {
  if (m == 0) return;
  check(cudaSetDevice(device_), "cudaSetDevice");
  const Resident& r = resident(w, bias);
  if (!r.block) {
    ++cpu_fallbacks_;
    cpu::matmul(x, m, w, y, bias);
    return;
  }
  const uint64_t in = sizeof(float) * uint64_t(m * w.cols), out = sizeof(float) * uint64_t(m * w.rows);
  x_.ensure(in);  // every call ends synchronised, so growing is safe
  y_.ensure(out);
  host_x_.ensure(in);
  host_y_.ensure(out);
  std::memcpy(host_x_.get(), x, in);
  check(cudaMemcpyAsync(x_.get(), host_x_.get(), in, cudaMemcpyHostToDevice, stream_.get()), "cudaMemcpyAsync (activations)");
  cpu::WeightMatrix on_device = w;
  on_device.data = r.block.get();
  if (r.block_scales) {
    on_device.block_scales = r.block_scales;
    on_device.block_row0 = r.block_row0;
  }
  matmul_->run(device_weights(on_device), x_.get<float>(), m, y_.get<float>(), r.bias);
  check(cudaMemcpyAsync(host_y_.get(), y_.get(), out, cudaMemcpyDeviceToHost, stream_.get()), "cudaMemcpyAsync (results)");
  stream_.synchronize();
  std::memcpy(y, host_y_.get(), out);
}

}  // namespace moe::cuda
