#pragma once
// Routed experts computed on one CUDA device, every expert's weights uploaded once into one
// device allocation: the first piece of the GPU executor. Each layer's expert groups go to the
// device eight tokens at a time (the expert GEMV's limit); gate, up and down run as expert
// GEMVs with SwiGLU between them, or DS-MoE's bias and tanh-GeLU. Results agree with the CPU
// runner to rounding (a different summation order), not bit for bit. bf16 experts only.
#include <cuda_runtime_api.h>

#include <vector>

#include "kernels/cuda/expert_gemv.h"
#include "runtime/model/expert_runner.h"
#include "runtime/model/weights.h"

namespace moe::offload {

class DeviceExperts final : public model::ExpertRunner {
 public:
  // Throws moe::Error(kCuda) without a device, kUnsupported for experts not in bf16.
  explicit DeviceExperts(const model::ModelWeights& weights, int device = 0);
  ~DeviceExperts() override;
  DeviceExperts(const DeviceExperts&) = delete;
  DeviceExperts& operator=(const DeviceExperts&) = delete;

  void run(int layer, const float* x, int64_t hidden, const model::RoutingDecision& routing, float* out) override;
  uint64_t device_bytes() const { return arena_bytes_; }

 private:
  struct Expert {
    cuda::DeviceWeights gate, up, down;  // gate.data == nullptr: the GeLU form
    const float* up_bias = nullptr;      // device
  };
  std::vector<std::vector<Expert>> experts_;  // [layer][expert]
  int device_ = 0;
  void* arena_ = nullptr;  // every expert's matrices and biases
  uint64_t arena_bytes_ = 0;
  float* scratch_ = nullptr;  // x, two activations and y for kMaxGemvTokens rows
  int64_t hidden_ = 0, width_ = 0;
  cudaStream_t stream_ = nullptr;
  std::vector<float> rows_, results_;
};

}  // namespace moe::offload
