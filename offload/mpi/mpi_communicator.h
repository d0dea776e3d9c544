#pragma once
// The expert results' exchange between CPU ranks: one MPI_Ialltoallv per call over a duplicate
// of the world communicator (so it never matches a control message), in rows of one MPI type
// (counts stay ints at any hidden size), polled against the rank timeout.
#include <mpi.h>

#include <functional>
#include <map>
#include <vector>

#include "offload/executor/communicator.h"

namespace moe::offload::mpi {

class MpiCommunicator final : public RankCommunicator {
 public:
  // Over `comm`, which the process group duplicated for exchanges when MPI started: making one
  // is no collective, so a rank may make it inside a step that fails on another rank.
  // `timeout`: the seconds an exchange may wait now (the process group's --rank-timeout).
  MpiCommunicator(MPI_Comm comm, std::function<double()> timeout);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_to_all(const float* send, std::span<const int64_t> send_rows, std::span<const int64_t> send_offsets, float* recv,
                  std::span<const int64_t> recv_rows, std::span<const int64_t> recv_offsets, int64_t row_floats) override;
  void start_recording() override;
  double replay_bare() override;

 private:
  struct Shape {  // one exchange's arguments, in rows
    std::vector<int> send_rows, send_offsets, recv_rows, recv_offsets;
    int64_t row_floats = 0;
  };
  MPI_Datatype row_type(int64_t row_floats);
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::function<double()> timeout_;
  std::map<int64_t, MPI_Datatype> row_types_;
  bool recording_ = false;
  std::vector<Shape> recorded_;
};

}  // namespace moe::offload::mpi
