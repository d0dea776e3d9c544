#include "offload/executor/communicator.h"

#include "runtime/core/error.h"

namespace moe::offload {

std::vector<std::vector<std::vector<float>>> InProcessCommunicator::all_to_all(std::vector<std::vector<std::vector<float>>> send) {
  MOE_CHECK(int(send.size()) == devices_, ErrorCode::kInternal, "all_to_all over {} devices got {} senders", devices_, send.size());
  std::vector<std::vector<std::vector<float>>> recv(static_cast<size_t>(devices_), std::vector<std::vector<float>>(size_t(devices_)));
  for (int s = 0; s < devices_; ++s) {
    MOE_CHECK(int(send[size_t(s)].size()) == devices_, ErrorCode::kInternal, "all_to_all sender {} has {} parts", s,
              send[size_t(s)].size());
    for (int d = 0; d < devices_; ++d) {
      if (s != d) bytes_ += send[size_t(s)][size_t(d)].size() * sizeof(float);
      recv[size_t(d)][size_t(s)] = std::move(send[size_t(s)][size_t(d)]);
    }
  }
  return recv;
}

}  // namespace moe::offload
