#include "offload/gpu/nccl_rank_communicator.h"

#include <chrono>
#include <thread>

#include "kernels/cuda/device.h"
#include "offload/gpu/nccl_communicator.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

}  // namespace

NcclRankCommunicator::NcclRankCommunicator(ProcessGroup& group, int gpu)
    : group_(group), rank_(group.rank()), size_(group.size()), gpu_(gpu) {
  cuda::check(cudaSetDevice(gpu_), "cudaSetDevice");
  stream_ = std::make_unique<cuda::Stream>();
}

void NcclRankCommunicator::join() {
  cuda::check(cudaSetDevice(gpu_), "cudaSetDevice");
  ncclUniqueId id{};
  if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  group_.broadcast(&id, sizeof id, 0);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // returns at once; settle() polls it against the deadline
  const ncclResult_t started = ncclCommInitRankConfig(&comm_, size_, id, rank_, &config);
  if (started != ncclInProgress) check_nccl(started, "ncclCommInitRankConfig");
  joined_ = true;
  settle(10 * group_.timeout(), "joining the NCCL communicator", false);
}

NcclRankCommunicator::~NcclRankCommunicator() {
  cudaSetDevice(gpu_);
  stream_.reset();
  send_.reset();
  recv_.reset();
  if (comm_) ncclCommDestroy(comm_);
}

void NcclRankCommunicator::settle(double timeout, const char* what, bool stream_too) {
  const auto start = Clock::now();
  for (int polls = 0;; ++polls) {
    ncclResult_t state = ncclSuccess;
    check_nccl(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError");
    if (state != ncclSuccess && state != ncclInProgress) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
      check_nccl(state, what);
    }
    bool done = state == ncclSuccess;
    if (done && stream_too) {
      const cudaError_t s = cudaStreamQuery(stream_->get());
      if (s != cudaErrorNotReady) cuda::check(s, "cudaStreamQuery (NCCL exchange)");
      done = s == cudaSuccess;
    }
    if (done) return;
    if ((polls & 63) == 0 && seconds_since(start) > timeout) {
      ncclCommAbort(comm_);  // frees this rank from the collective; the run then ends
      comm_ = nullptr;
      fail(ErrorCode::kIo, "{} waited {:.0f} s for the other ranks (--rank-timeout): one of them died or hangs", what, timeout);
    }
    if (polls > 4000) std::this_thread::sleep_for(std::chrono::microseconds(polls > 20000 ? 200 : 20));
    else if (polls > 500) std::this_thread::yield();
  }
}

void NcclRankCommunicator::post(const Shape& s) {
  const ncclResult_t opened = ncclGroupStart();
  check_nccl(opened, "ncclGroupStart");
  for (int p = 0; p < size_; ++p) {
    if (p == rank_) continue;
    if (s.send_count[size_t(p)] > 0)
      check_nccl(ncclSend(send_.get<float>() + s.send_offset[size_t(p)], size_t(s.send_count[size_t(p)]), ncclFloat, p, comm_,
                          stream_->get()),
                 "ncclSend");
    if (s.recv_count[size_t(p)] > 0)
      check_nccl(ncclRecv(recv_.get<float>() + s.recv_offset[size_t(p)], size_t(s.recv_count[size_t(p)]), ncclFloat, p, comm_,
                          stream_->get()),
                 "ncclRecv");
  }
  const ncclResult_t closed = ncclGroupEnd();
  if (closed != ncclInProgress) check_nccl(closed, "ncclGroupEnd");
}

void NcclRankCommunicator::all_to_all(const float* send, std::span<const int64_t> send_rows, std::span<const int64_t> send_offsets,
                                      float* recv, std::span<const int64_t> recv_rows, std::span<const int64_t> recv_offsets,
                                      int64_t row_floats) {
  const size_t n = size_t(size_);
  MOE_CHECK(send_rows.size() == n && send_offsets.size() == n && recv_rows.size() == n && recv_offsets.size() == n,
            ErrorCode::kInternal, "an exchange over {} ranks got parts for {}", n, send_rows.size());
  if (!joined_) join();
  MOE_CHECK(comm_ != nullptr, ErrorCode::kIo, "the NCCL communicator was aborted by an earlier failure");
  const auto start = Clock::now();
  Shape s;
  int64_t send_end = 0, recv_end = 0;
  for (size_t r = 0; r < n; ++r) {
    const bool self = int(r) == rank_;
    s.send_count.push_back(self ? 0 : send_rows[r] * row_floats);
    s.send_offset.push_back(send_offsets[r] * row_floats);
    s.recv_count.push_back(self ? 0 : recv_rows[r] * row_floats);
    s.recv_offset.push_back(recv_offsets[r] * row_floats);
    if (s.send_count.back()) send_end = std::max(send_end, s.send_offset.back() + s.send_count.back());
    if (s.recv_count.back()) recv_end = std::max(recv_end, s.recv_offset.back() + s.recv_count.back());
  }
  cuda::check(cudaSetDevice(gpu_), "cudaSetDevice");
  send_.ensure(sizeof(float) * uint64_t(std::max<int64_t>(send_end, 1)));
  recv_.ensure(sizeof(float) * uint64_t(std::max<int64_t>(recv_end, 1)));
  if (send_end > 0)
    cuda::check(cudaMemcpyAsync(send_.get<float>(), send, sizeof(float) * size_t(send_end), cudaMemcpyHostToDevice, stream_->get()),
                "cudaMemcpyAsync (exchange send)");
  post(s);
  settle(group_.timeout(), "the expert results' exchange", false);
  for (size_t r = 0; r < n; ++r)
    if (s.recv_count[r] > 0)
      cuda::check(cudaMemcpyAsync(recv + s.recv_offset[r], recv_.get<float>() + s.recv_offset[r], sizeof(float) * size_t(s.recv_count[r]),
                                  cudaMemcpyDeviceToHost, stream_->get()),
                  "cudaMemcpyAsync (exchange receive)");
  settle(group_.timeout(), "the expert results' exchange", true);
  for (size_t r = 0; r < n; ++r) bytes_sent_ += sizeof(float) * uint64_t(s.send_count[r]);
  ++exchanges_;
  seconds_ += seconds_since(start);
  if (recording_) recorded_.push_back(std::move(s));
}

void NcclRankCommunicator::start_recording() {
  recording_ = true;
  recorded_.clear();
}

double NcclRankCommunicator::replay_bare() {
  recording_ = false;
  if (!joined_) join();
  MOE_CHECK(comm_ != nullptr, ErrorCode::kIo, "the NCCL communicator was aborted by an earlier failure");
  cuda::check(cudaSetDevice(gpu_), "cudaSetDevice");
  group_.broadcast(&recording_, sizeof recording_, 0);  // every rank starts together
  const auto start = Clock::now();
  for (const Shape& s : recorded_) post(s);  // the buffers are large enough for every one of them
  settle(group_.timeout(), "the bare NCCL exchange", true);
  return seconds_since(start);
}

}  // namespace moe::offload
