// The NCCL all-to-all against the in-process one: the same parts arrive at the same ranks and
// the same bytes are counted as crossing between devices, over every visible GPU (one GPU
// exercises the rank's copy to itself). Skips without a GPU.
#include <gtest/gtest.h>

#include <random>

#include "kernels/cuda/device.h"
#include "offload/gpu/nccl_communicator.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

TEST(Nccl, AllToAllMatchesTheInProcessOne) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device is present: GPU tests skipped";
  const int n = cuda::device_count();
  NcclCommunicator nccl(n);
  InProcessCommunicator reference(n);
  std::mt19937 rng(3);
  for (int round = 0; round < 4; ++round) {
    std::vector<std::vector<std::vector<float>>> send(static_cast<size_t>(n), std::vector<std::vector<float>>(static_cast<size_t>(n)));
    for (auto& row : send)
      for (auto& part : row) {
        part.resize(rng() % 3 == 0 ? 0 : rng() % 5000);  // some parts empty
        for (float& v : part) v = float(rng() % 1000) * 0.5f;
      }
    EXPECT_EQ(nccl.all_to_all(send), reference.all_to_all(send)) << "round " << round;
    EXPECT_EQ(nccl.bytes_moved(), reference.bytes_moved());
  }
  EXPECT_THROW(NcclCommunicator(n + 1), Error);
}

}  // namespace
}  // namespace moe::offload
