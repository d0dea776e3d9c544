#include "offload/gpu/nccl_communicator.h"

#include <numeric>

#include "kernels/cuda/device.h"
#include "runtime/core/error.h"

namespace moe::offload {

void check_nccl(ncclResult_t status, const char* what) {
  if (status != ncclSuccess) fail(ErrorCode::kCuda, "{} failed: {}", what, ncclGetErrorString(status));
}

NcclCommunicator::NcclCommunicator(int devices) {
  MOE_CHECK(devices >= 1 && devices <= cuda::device_count(), ErrorCode::kCuda,
            "an all-to-all over {} GPUs needs as many; {} visible", devices, cuda::device_count());
  std::vector<int> ids(static_cast<size_t>(devices));
  std::iota(ids.begin(), ids.end(), 0);
  // Streams first: if one fails, no communicator exists yet to leak (a constructor that throws
  // runs no destructor).
  for (int r = 0; r < devices; ++r) {
    ranks_.push_back(std::make_unique<Rank>());
    cuda::check(cudaSetDevice(r), "cudaSetDevice");
    ranks_.back()->stream = std::make_unique<cuda::Stream>();
  }
  std::vector<ncclComm_t> comms(static_cast<size_t>(devices));
  check_nccl(ncclCommInitAll(comms.data(), devices, ids.data()), "ncclCommInitAll");
  for (int r = 0; r < devices; ++r) ranks_[size_t(r)]->comm = comms[size_t(r)];
}

NcclCommunicator::~NcclCommunicator() {
  for (size_t r = 0; r < ranks_.size(); ++r) {
    cudaSetDevice(int(r));
    ranks_[r]->stream.reset();
    ranks_[r]->send.reset();
    ranks_[r]->recv.reset();
    if (ranks_[r]->comm) ncclCommDestroy(ranks_[r]->comm);
  }
}

std::vector<std::vector<std::vector<float>>> NcclCommunicator::all_to_all(std::vector<std::vector<std::vector<float>>> send) {
  const int n = size();
  MOE_CHECK(int(send.size()) == n, ErrorCode::kInternal, "all_to_all over {} GPUs got {} senders", n, send.size());
  // offsets[s][d]: where s's part for d starts in s's send buffer (and, the counts being known to
  // every rank in one process, where d puts it: recv_offsets[d][s]).
  std::vector<std::vector<size_t>> offsets(size_t(n), std::vector<size_t>(size_t(n) + 1, 0));
  std::vector<std::vector<size_t>> recv_offsets(size_t(n), std::vector<size_t>(size_t(n) + 1, 0));
  for (int s = 0; s < n; ++s) {
    MOE_CHECK(int(send[size_t(s)].size()) == n, ErrorCode::kInternal, "all_to_all sender {} has {} parts", s, send[size_t(s)].size());
    for (int d = 0; d < n; ++d) offsets[size_t(s)][size_t(d) + 1] = offsets[size_t(s)][size_t(d)] + send[size_t(s)][size_t(d)].size();
  }
  for (int d = 0; d < n; ++d)
    for (int s = 0; s < n; ++s)
      recv_offsets[size_t(d)][size_t(s) + 1] = recv_offsets[size_t(d)][size_t(s)] + send[size_t(s)][size_t(d)].size();
  for (int r = 0; r < n; ++r) {
    Rank& rank = *ranks_[size_t(r)];
    cuda::check(cudaSetDevice(r), "cudaSetDevice");
    rank.send.ensure(sizeof(float) * std::max<size_t>(offsets[size_t(r)][size_t(n)], 1));
    rank.recv.ensure(sizeof(float) * std::max<size_t>(recv_offsets[size_t(r)][size_t(n)], 1));
    for (int d = 0; d < n; ++d) {
      const auto& part = send[size_t(r)][size_t(d)];
      if (part.empty()) continue;
      cuda::check(cudaMemcpyAsync(rank.send.get<float>() + offsets[size_t(r)][size_t(d)], part.data(), sizeof(float) * part.size(),
                                  cudaMemcpyHostToDevice, rank.stream->get()),
                  "cudaMemcpyAsync (all-to-all send)");
    }
  }
  check_nccl(ncclGroupStart(), "ncclGroupStart");
  for (int r = 0; r < n; ++r) {
    Rank& rank = *ranks_[size_t(r)];
    for (int p = 0; p < n; ++p) {
      if (p == r) continue;
      const size_t out = send[size_t(r)][size_t(p)].size(), in = send[size_t(p)][size_t(r)].size();
      if (out) check_nccl(ncclSend(rank.send.get<float>() + offsets[size_t(r)][size_t(p)], out, ncclFloat, p, rank.comm, rank.stream->get()), "ncclSend");
      if (in) check_nccl(ncclRecv(rank.recv.get<float>() + recv_offsets[size_t(r)][size_t(p)], in, ncclFloat, p, rank.comm, rank.stream->get()), "ncclRecv");
      bytes_ += sizeof(float) * out;
    }
  }
  check_nccl(ncclGroupEnd(), "ncclGroupEnd");
  std::vector<std::vector<std::vector<float>>> recv(static_cast<size_t>(n), std::vector<std::vector<float>>(static_cast<size_t>(n)));
  for (int r = 0; r < n; ++r) {
    Rank& rank = *ranks_[size_t(r)];
    cuda::check(cudaSetDevice(r), "cudaSetDevice");
    const size_t self = send[size_t(r)][size_t(r)].size();
    if (self)
      cuda::check(cudaMemcpyAsync(rank.recv.get<float>() + recv_offsets[size_t(r)][size_t(r)], rank.send.get<float>() + offsets[size_t(r)][size_t(r)],
                                  sizeof(float) * self, cudaMemcpyDeviceToDevice, rank.stream->get()),
                  "cudaMemcpyAsync (all-to-all self)");
    for (int s = 0; s < n; ++s) {
      auto& part = recv[size_t(r)][size_t(s)];
      part.resize(send[size_t(s)][size_t(r)].size());
      if (part.empty()) continue;
      cuda::check(cudaMemcpyAsync(part.data(), rank.recv.get<float>() + recv_offsets[size_t(r)][size_t(s)], sizeof(float) * part.size(),
                                  cudaMemcpyDeviceToHost, rank.stream->get()),
                  "cudaMemcpyAsync (all-to-all receive)");
    }
  }
  for (auto& rank : ranks_) rank->stream->synchronize();
  return recv;
}

}  // namespace moe::offload
