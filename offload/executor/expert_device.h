#pragma once
// Where one offloading device keeps its experts and computes them: the seam between the
// executor's policy (tiers, cache, prefetch, expert parallelism) and a backend. The CPU virtual
// device keeps slots in host memory and runs the CPU kernels, bit for bit what the resident run
// computes; the CUDA device (offload/gpu) keeps them in device memory, fills them on a copy
// stream and runs the expert GEMVs on a compute stream.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "offload/executor/expert_layout.h"
#include "runtime/model/gated_mlp.h"

namespace moe::offload {

// One expert's work: its matrices, its rows x [m, hidden] and where its results go (host memory).
struct ExpertRun {
  model::GatedMlpMatrices w;
  const float* x = nullptr;
  int64_t m = 0;
  float* out = nullptr;
};

class ExpertDevice {
 public:
  virtual ~ExpertDevice() = default;
  virtual std::string name() const = 0;
  // True when its work runs on hardware of its own (a GPU), so the executor drives several such
  // devices at once, a thread each; CPU virtual devices share the host's cores and take turns.
  virtual bool concurrent() const { return false; }
  // `bytes` of this device's memory for expert slots, owned by the device, 256-byte aligned.
  virtual std::byte* allocate(uint64_t bytes) = 0;
  // Copies one expert's bytes into device memory in chunks: the copy threads call begin(dst),
  // write() for consecutive pieces of host memory (any kind; the host pool's pinned memory is
  // the fast path), then finish(), which returns once the bytes are on the device.
  class Upload {
   public:
    virtual ~Upload() = default;
    virtual void write(uint64_t offset, const std::byte* src, uint64_t bytes) = 0;
    virtual void finish() = 0;
  };
  virtual std::unique_ptr<Upload> begin_upload(std::byte* dst) = 0;
  // Runs the expert whose matrices `w` point into this device's memory on m rows of x (host
  // memory, [m, hidden]); out: [m, hidden] host memory. Returns when out is written.
  virtual void run_expert(const model::GatedMlpMatrices& w, const float* x, int64_t m, float* out) = 0;
  // The same for several experts whose matrices are all in this device's memory (a layer's ready
  // experts); each run's results are those run_expert gives it alone. A GPU computes them
  // together (one grouped launch per projection); by default they run one by one.
  virtual void run_experts(std::span<const ExpertRun> runs) {
    for (const ExpertRun& r : runs) run_expert(r.w, r.x, r.m, r.out);
  }
  // The same for an expert whose matrices are in host memory (a streamed or low-precision copy):
  // the device brings them over for this one call.
  virtual void run_host_expert(const model::GatedMlpMatrices& w, const float* x, int64_t m, float* out) = 0;
};

// Makes the device for expert-parallel rank `index` once the experts' layout is known.
using ExpertDeviceFactory = std::function<std::unique_ptr<ExpertDevice>(int index, const ExpertLayout& layout)>;

// A CPU "virtual device" with a memory budget standing in for a GPU.
class CpuExpertDevice final : public ExpertDevice {
 public:
  ~CpuExpertDevice() override;
  std::string name() const override { return "cpu"; }
  std::byte* allocate(uint64_t bytes) override;
  std::unique_ptr<Upload> begin_upload(std::byte* dst) override;
  void run_expert(const model::GatedMlpMatrices& w, const float* x, int64_t m, float* out) override;
  void run_host_expert(const model::GatedMlpMatrices& w, const float* x, int64_t m, float* out) override {
    run_expert(w, x, m, out);
  }

 private:
  std::vector<std::byte*> blocks_;
  std::vector<float> scratch_;
};

}  // namespace moe::offload
