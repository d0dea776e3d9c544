#pragma once
// The executor's device on a CUDA GPU. Slots live in the GPU's device arena; a copy thread fills them on
// the device's copy stream (straight from the pinned host pool, or through a ring of pinned
// staging buffers for pageable memory) while the executor's thread computes the resident
// experts on the compute stream, so the copies of the next experts overlap the current ones'
// compute. The experts ready in a layer run together: their rows go over in one copy, and each
// projection is one grouped GEMM launch for the experts with 32 rows or more (prefill) and the
// expert GEMV, eight rows at a time, for the others (decode).
// Weights in bf16, int8 or int4 (the group-quantised layout of kernels/cpu/quantize.h), or fp8
// e4m3 with the checkpoint's f32 block scales (kernels/cpu/fp8.h), dequantised in the kernels.
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "offload/executor/expert_device.h"
#include "offload/executor/expert_passes.h"
#include "runtime/cuda/cuda_resources.h"
#include "runtime/cuda/device_arena.h"
#include "runtime/cuda/device_matmul.h"  // device_weights

namespace moe::offload {

class CudaExpertDevice final : public ExpertDevice {
 public:
  static constexpr uint64_t kStagingBytes = uint64_t(4) << 20;  // each of the ring's buffers
  static constexpr int kStagingDepth = 4;
  static constexpr int64_t kGemmMinRows = 32;  // an expert with fewer rows takes the GEMV
  static constexpr int64_t kRowsPerPass = 512;  // bounds the activation buffers during prefill

  // On the arena's device; slots come from `arena`, which must outlive this. Throws
  // moe::Error(kUnsupported) for experts in a dtype the kernels do not take (f32, f16, mxfp4).
  CudaExpertDevice(cuda::DeviceArena& arena, const ExpertLayout& layout);
  ~CudaExpertDevice() override;

  std::string name() const override;
  bool concurrent() const override { return true; }
  std::byte* allocate(uint64_t bytes) override;
  std::unique_ptr<Upload> begin_upload(std::byte* dst) override;
  void run_expert(const model::GatedMlpMatrices& w, const float* x, int64_t m, float* out) override;
  void run_experts(std::span<const ExpertRun> runs) override;
  void run_host_expert(const model::GatedMlpMatrices& w, const float* x, int64_t m, float* out) override;

 private:
  class CopyUpload;
  void compute_pass(std::span<const ExpertRun> runs, const std::vector<RunPiece>& pass);

  cuda::DeviceArena& arena_;
  int id_;
  int64_t hidden_ = 0, width_ = 0;
  std::vector<cuda::DeviceArena::Block> blocks_;  // allocate()'s
  cuda::Stream compute_, copy_;
  cuda::DeviceBuffer activations_, host_expert_;
  cuda::PinnedBuffer rows_in_, rows_out_;
  std::array<cuda::PinnedBuffer, kStagingDepth> staging_;
  std::array<std::unique_ptr<cuda::Event>, kStagingDepth> staged_;  // a ring slot's copy has left
};

// Rank i on arenas[i]'s device: the factory for OffloadOptions::make_device. Throws
// moe::Error(kInvalidArgument) for a rank without an arena.
ExpertDeviceFactory cuda_expert_devices(std::vector<cuda::DeviceArena*> arenas);

}  // namespace moe::offload
