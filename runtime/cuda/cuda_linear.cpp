#include "runtime/cuda/cuda_linear.h"

#include <cstring>

#include "kernels/cuda/device.h"
#include "runtime/core/error.h"

namespace moe::cuda {

CudaLinear::CudaLinear(int device, uint64_t budget) : device_(select_device(device)), budget_(budget) {
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
  const bool takes = w.dtype == DType::kBF16 && w.scales == nullptr && w.cols % 8 == 0;
  const uint64_t bytes = dtype_bytes(w.dtype, size_t(w.rows * w.cols)) + (bias ? sizeof(float) * uint64_t(w.rows) : 0);
  if (!takes || resident_bytes_ + bytes > budget_) return *slot;  // stays on the CPU
  slot->weights.ensure(bytes);
  check(cudaMemcpy(slot->weights.get(), w.data, dtype_bytes(w.dtype, size_t(w.rows * w.cols)), cudaMemcpyHostToDevice),
        "cudaMemcpy (resident weights)");
  if (bias) {
    slot->bias.ensure(sizeof(float) * uint64_t(w.rows));
    check(cudaMemcpy(slot->bias.get(), bias, sizeof(float) * uint64_t(w.rows), cudaMemcpyHostToDevice), "cudaMemcpy (bias)");
  }
  slot->on_device = true;
  resident_bytes_ += bytes;
  return *slot;
}

void CudaLinear::matmul(const float* x, int64_t m, const cpu::WeightMatrix& w, float* y, const float* bias) {
  if (m == 0) return;
  check(cudaSetDevice(device_), "cudaSetDevice");
  const Resident& r = resident(w, bias);
  if (!r.on_device) {
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
  on_device.data = r.weights.get();
  matmul_->run(device_weights(on_device), x_.get<float>(), m, y_.get<float>(), bias ? r.bias.get<float>() : nullptr);
  check(cudaMemcpyAsync(host_y_.get(), y_.get(), out, cudaMemcpyDeviceToHost, stream_.get()), "cudaMemcpyAsync (results)");
  stream_.synchronize();
  std::memcpy(y, host_y_.get(), out);
}

}  // namespace moe::cuda
