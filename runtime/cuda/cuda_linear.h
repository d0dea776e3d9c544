#pragma once
// The transformer's dense products on one GPU: each weight matrix (and bias) is copied once,
// at first use, into the device arena and stays there (the resident weights); activations travel
// in and out through pinned buffers: bf16 matrices, and fp8 ones with their block scales. Matrices
// the kernels do not take (f32, f16, int8/int4 dense parts, strided views) and those the arena has
// no room for stay on the CPU kernels. Agrees with the CPU to rounding.
#include <cstdint>
#include <memory>
#include <map>
#include <tuple>
#include <vector>

#include "runtime/cuda/cuda_resources.h"
#include "runtime/cuda/device_arena.h"
#include "runtime/cuda/device_matmul.h"
#include "runtime/model/linear_backend.h"

namespace moe::cuda {

class CudaLinear final : public model::LinearBackend {
 public:
  // Resident weights come from `arena` (on its device), which must outlive this.
  explicit CudaLinear(DeviceArena& arena);
  ~CudaLinear() override;
  void matmul(const float* x, int64_t m, const cpu::WeightMatrix& w, float* y, const float* bias) override;
  uint64_t resident_bytes() const { return resident_bytes_; }
  int64_t cpu_fallbacks() const { return cpu_fallbacks_; }

 private:
  struct Resident {
    DeviceArena::Block block;  // the weights, fp8's block scales, then the bias (empty: on the CPU)
    const float* bias = nullptr;
    const float* block_scales = nullptr;  // fp8: the grid rows under the matrix's rows
    int64_t block_row0 = 0;               // fp8: the matrix's first row within them
  };
  const Resident& resident(const cpu::WeightMatrix& w, const float* bias);

  DeviceArena& arena_;
  int device_;
  uint64_t resident_bytes_ = 0;
  int64_t cpu_fallbacks_ = 0;
  Stream stream_;
  std::unique_ptr<DeviceMatmul> matmul_;
  // By the host weights' address and shape (two views of one fused tensor may start at the same
  // address) and the bias's address.
  std::map<std::tuple<const void*, int64_t, int64_t, const float*>, std::unique_ptr<Resident>> resident_;
  DeviceBuffer x_, y_;
  PinnedBuffer host_x_, host_y_;
};

}  // namespace moe::cuda
