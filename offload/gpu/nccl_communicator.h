#pragma once
// The expert-parallel all-to-all among the GPUs this process drives (ranks 0..n-1 on devices
// 0..n-1): one NCCL communicator per device from ncclCommInitAll, each rank's parts staged in
// its device's memory, sent and received point to point in one NCCL group, and brought back.
// A rank's part for itself is a device-local copy. Works with one GPU (no NCCL traffic).
#include <nccl.h>

#include <memory>
#include <vector>

#include "offload/executor/communicator.h"
#include "runtime/cuda/cuda_resources.h"

namespace moe::offload {

class NcclCommunicator final : public Communicator {
 public:
  // Throws moe::Error(kCuda) when fewer than `devices` GPUs are visible or NCCL fails.
  explicit NcclCommunicator(int devices);
  ~NcclCommunicator() override;
  int size() const override { return int(ranks_.size()); }
  std::vector<std::vector<std::vector<float>>> all_to_all(std::vector<std::vector<std::vector<float>>> send) override;
  uint64_t bytes_moved() const override { return bytes_; }

 private:
  struct Rank {
    ncclComm_t comm = nullptr;
    std::unique_ptr<cuda::Stream> stream;
    cuda::DeviceBuffer send, recv;
  };
  std::vector<std::unique_ptr<Rank>> ranks_;
  uint64_t bytes_ = 0;
};

// Throws moe::Error(kCuda) naming `what` when `status` is not ncclSuccess.
void check_nccl(ncclResult_t status, const char* what);

}  // namespace moe::offload
