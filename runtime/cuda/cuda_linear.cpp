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
  if (w.dtype != DType::kBF16 || w.scales != nullptr || w.cols % 8 != 0) return *slot;  // stays on the CPU
  const uint64_t weight_bytes = dtype_bytes(w.dtype, size_t(w.rows * w.cols));
  constexpr uint64_t kBiasAlign = 256;  // the bias after the weights, in the same arena piece
  const uint64_t bias_at = (weight_bytes + kBiasAlign - 1) / kBiasAlign * kBiasAlign;
  auto block = arena_.try_allocate(bias_at + (bias ? sizeof(float) * uint64_t(w.rows) : 0));
  if (!block) return *slot;  // no room left: stays on the CPU
  check(cudaMemcpy(block->get(), w.data, weight_bytes, cudaMemcpyHostToDevice), "cudaMemcpy (resident weights)");
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
  matmul_->run(device_weights(on_device), x_.get<float>(), m, y_.get<float>(), r.bias);
  check(cudaMemcpyAsync(host_y_.get(), y_.get(), out, cudaMemcpyDeviceToHost, stream_.get()), "cudaMemcpyAsync (results)");
  stream_.synchronize();
  std::memcpy(y, host_y_.get(), out);
}

}  // namespace moe::cuda
