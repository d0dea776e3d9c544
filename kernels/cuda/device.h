#pragma once
// Whether a CUDA device can run here, and the one error conversion the host side uses.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace moe::cuda {

// Number of usable devices; 0 (never an error) when there is no driver or no GPU.
int device_count();
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)" for device `index`.
std::string describe_device(int index);
// Makes device `index` current for this thread and returns it; throws moe::Error(kCuda) naming
// the number visible when there is no such device.
int select_device(int index);
// Bytes free on device `index` now (cudaMemGetInfo).
uint64_t free_memory(int index);
// Throws moe::Error(kCuda) naming `what` when `status` is not cudaSuccess.
void check(cudaError_t status, const char* what);

}  // namespace moe::cuda
