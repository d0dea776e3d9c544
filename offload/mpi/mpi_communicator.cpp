#include "offload/mpi/mpi_communicator.h"

#include <chrono>
#include <climits>

#include "offload/mpi/mpi_check.h"
#include "runtime/core/error.h"

namespace moe::offload::mpi {
namespace {

std::vector<int> as_ints(std::span<const int64_t> rows, const char* what) {
  std::vector<int> out(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    MOE_CHECK(rows[i] >= 0 && rows[i] <= INT_MAX, ErrorCode::kInvalidArgument, "an exchange's {} of {} rows passes MPI's int",
              what, rows[i]);
    out[i] = int(rows[i]);
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::function<double()> timeout) : comm_(comm), timeout_(std::move(timeout)) {
  check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (auto& [floats, type] : row_types_) MPI_Type_free(&type);
}

MPI_Datatype MpiCommunicator::row_type(int64_t row_floats) {
  if (const auto it = row_types_.find(row_floats); it != row_types_.end()) return it->second;
  MOE_CHECK(row_floats >= 1 && row_floats <= INT_MAX, ErrorCode::kInvalidArgument, "a row of {} floats", row_floats);
  MPI_Datatype type = MPI_DATATYPE_NULL;
  check(MPI_Type_contiguous(int(row_floats), MPI_FLOAT, &type), "MPI_Type_contiguous");
  check(MPI_Type_commit(&type), "MPI_Type_commit");
  return row_types_[row_floats] = type;
}

void MpiCommunicator::all_to_all(const float* send, std::span<const int64_t> send_rows, std::span<const int64_t> send_offsets,
                                 float* recv, std::span<const int64_t> recv_rows, std::span<const int64_t> recv_offsets,
                                 int64_t row_floats) {
  const size_t n = size_t(size_);
  MOE_CHECK(send_rows.size() == n && send_offsets.size() == n && recv_rows.size() == n && recv_offsets.size() == n,
            ErrorCode::kInternal, "an exchange over {} ranks got parts for {}", n, send_rows.size());
  const auto start = std::chrono::steady_clock::now();
  Shape shape{as_ints(send_rows, "count"), as_ints(send_offsets, "offset"), as_ints(recv_rows, "count"),
              as_ints(recv_offsets, "offset"), row_floats};
  // A part for oneself is never moved: the caller keeps it in place.
  shape.send_rows[size_t(rank_)] = shape.recv_rows[size_t(rank_)] = 0;
  MPI_Request request = MPI_REQUEST_NULL;
  const MPI_Datatype type = row_type(row_floats);
  // MPI takes a non-const send buffer in older headers; it only reads it.
  check(MPI_Ialltoallv(const_cast<float*>(send), shape.send_rows.data(), shape.send_offsets.data(), type, recv,
                       shape.recv_rows.data(), shape.recv_offsets.data(), type, comm_, &request),
        "MPI_Ialltoallv (expert results)");
  wait(request, timeout_(), "the expert results' exchange");
  for (size_t r = 0; r < n; ++r) bytes_sent_ += uint64_t(shape.send_rows[r]) * uint64_t(row_floats) * sizeof(float);
  ++exchanges_;
  seconds_ += seconds_since(start);
  if (recording_) recorded_.push_back(std::move(shape));
}

void MpiCommunicator::start_recording() {
  recording_ = true;
  recorded_.clear();
}

double MpiCommunicator::replay_bare() {
  recording_ = false;
  size_t send_floats = 1, recv_floats = 1;
  for (const Shape& s : recorded_)
    for (size_t r = 0; r < size_t(size_); ++r) {
      send_floats = std::max(send_floats, size_t(s.send_offsets[r] + s.send_rows[r]) * size_t(s.row_floats));
      recv_floats = std::max(recv_floats, size_t(s.recv_offsets[r] + s.recv_rows[r]) * size_t(s.row_floats));
    }
  std::vector<float> send(send_floats, 1.0f), recv(recv_floats);
  MPI_Request request = MPI_REQUEST_NULL;  // every rank starts together
  check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
  wait(request, timeout_(), "the bare exchange's start");
  const auto start = std::chrono::steady_clock::now();
  for (const Shape& s : recorded_) {
    const MPI_Datatype type = row_type(s.row_floats);
    check(MPI_Alltoallv(send.data(), s.send_rows.data(), s.send_offsets.data(), type, recv.data(), s.recv_rows.data(),
                        s.recv_offsets.data(), type, comm_),
          "MPI_Alltoallv (bare)");
  }
  return seconds_since(start);
}

}  // namespace moe::offload::mpi
