#pragma once
// Moves activations between devices for expert parallelism: an all-to-all where device s
// sends send[s][d] to device d. The in-process implementation serves CPU virtual devices and
// tests; the NCCL one (with the CUDA backend) has the same shape.
#include <cstdint>
#include <span>
#include <vector>

namespace moe::offload {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int size() const = 0;
  // send[s][d] -> returns recv[d][s].
  virtual std::vector<std::vector<std::vector<float>>> all_to_all(std::vector<std::vector<std::vector<float>>> send) = 0;
  // Bytes that crossed between different devices so far.
  virtual uint64_t bytes_moved() const = 0;
};

class InProcessCommunicator final : public Communicator {
 public:
  explicit InProcessCommunicator(int devices) : devices_(devices) {}
  int size() const override { return devices_; }
  std::vector<std::vector<std::vector<float>>> all_to_all(std::vector<std::vector<std::vector<float>>> send) override;
  uint64_t bytes_moved() const override { return bytes_; }

 private:
  int devices_;
  uint64_t bytes_ = 0;
};

// Between the processes of one run (MPI ranks; NCCL across them for GPUs): rank-level rows of
// `row_floats` floats. send_rows[r] rows of `send` from row send_offsets[r] go to rank r, and
// recv_rows[r] rows from rank r land at row recv_offsets[r] of `recv`; a rank's counts for a
// peer must be the peer's counts for it (callers derive both from the replicated routing).
// Parts for oneself are not moved. Every call returns within the rank timeout or throws
// moe::Error naming the ranks it waited for, so no rank hangs in an exchange.
class RankCommunicator {
 public:
  virtual ~RankCommunicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void all_to_all(const float* send, std::span<const int64_t> send_rows, std::span<const int64_t> send_offsets,
                          float* recv, std::span<const int64_t> recv_rows, std::span<const int64_t> recv_offsets,
                          int64_t row_floats) = 0;
  // Benchmarks: the exchanges made since start_recording(), made again through the bare
  // collective (MPI_Alltoallv; NCCL's send/receive group) on buffers of their sizes, every rank
  // together; returns their seconds.
  virtual void start_recording() = 0;
  virtual double replay_bare() = 0;
  uint64_t bytes_sent() const { return bytes_sent_; }   // to other ranks, so far
  double seconds() const { return seconds_; }          // in all_to_all, waiting included
  uint64_t exchanges() const { return exchanges_; }

 protected:
  uint64_t bytes_sent_ = 0, exchanges_ = 0;
  double seconds_ = 0;
};

}  // namespace moe::offload
