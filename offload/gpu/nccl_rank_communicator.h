#pragma once
// The expert results' exchange between GPU ranks (one GPU per rank, or the first of a rank's
// GPUs): one NCCL communicator across the processes, its unique id broadcast by rank 0 over the
// process group (MPI), each exchange a group of point-to-point sends and receives staged through
// device memory (activations live on the host between layers). Nonblocking: initialisation
// and every exchange are polled against the rank timeout, and a communicator that passes it is
// aborted (ncclCommAbort), so no rank waits forever for a dead peer.
#include <nccl.h>

#include <memory>
#include <vector>

#include "offload/executor/communicator.h"
#include "offload/executor/process_group.h"
#include "runtime/cuda/cuda_resources.h"

namespace moe::offload {

class NcclRankCommunicator final : public RankCommunicator {
 public:
  // On GPU `gpu`. Every rank of `group` joins the NCCL communicator at its first exchange (a
  // collective, so none is made inside a step that may fail on one rank, such as loading).
  // Throws moe::Error(kCuda) when NCCL fails and (kIo) when a peer does not join within ten rank
  // timeouts.
  NcclRankCommunicator(ProcessGroup& group, int gpu);
  ~NcclRankCommunicator() override;
  NcclRankCommunicator(const NcclRankCommunicator&) = delete;
  NcclRankCommunicator& operator=(const NcclRankCommunicator&) = delete;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_to_all(const float* send, std::span<const int64_t> send_rows, std::span<const int64_t> send_offsets, float* recv,
                  std::span<const int64_t> recv_rows, std::span<const int64_t> recv_offsets, int64_t row_floats) override;
  void start_recording() override;
  double replay_bare() override;

 private:
  struct Shape {  // one exchange, in floats
    std::vector<int64_t> send_count, send_offset, recv_count, recv_offset;
  };
  void join();  // the first exchange: rank 0's unique id to every rank, then ncclCommInitRankConfig
  // The sends and receives of `shape` on the device buffers, in one NCCL group.
  void post(const Shape& shape);
  // Polls NCCL's state (and the stream, when `stream_too`) until done; past `timeout` aborts.
  void settle(double timeout, const char* what, bool stream_too);
  ProcessGroup& group_;
  int rank_ = 0, size_ = 1, gpu_ = 0;
  ncclComm_t comm_ = nullptr;
  std::unique_ptr<cuda::Stream> stream_;
  cuda::DeviceBuffer send_, recv_;
  bool joined_ = false, recording_ = false;
  std::vector<Shape> recorded_;
};

}  // namespace moe::offload
