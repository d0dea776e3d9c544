#include "kernels/cuda/device.h"

#include <fmt/format.h>

#include "runtime/core/error.h"

namespace moe::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

std::string describe_device(int index) {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, index), "cudaGetDeviceProperties");
  return fmt::format("{} (sm_{}{}, {} SMs, {:.1f} GiB)", p.name, p.major, p.minor, p.multiProcessorCount,
                     double(p.totalGlobalMem) / double(1ull << 30));
}

int select_device(int index) {
  const int count = device_count();
  MOE_CHECK(index >= 0 && index < count, ErrorCode::kCuda, "no CUDA device {} ({} visible)", index, count);
  check(cudaSetDevice(index), "cudaSetDevice");
  return index;
}

uint64_t free_memory(int index) {
  select_device(index);
  size_t free = 0, total = 0;
  check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  return free;
}

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail(ErrorCode::kCuda, "{} failed: {}", what, cudaGetErrorString(status));
}

}  // namespace moe::cuda
