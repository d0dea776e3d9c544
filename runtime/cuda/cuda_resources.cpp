#include "runtime/cuda/cuda_resources.h"

#include "kernels/cuda/device.h"
#include "runtime/core/error.h"

namespace moe::cuda {

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) fail(ErrorCode::kCuda, "{} failed: {}", what, cublasGetStatusString(status));
}

DeviceBuffer::~DeviceBuffer() { reset(); }

void DeviceBuffer::reset() {
  cudaFree(data_);
  data_ = nullptr;
  bytes_ = 0;
}

void DeviceBuffer::ensure(uint64_t bytes) {
  if (bytes <= bytes_) return;
  reset();
  check(cudaMalloc(&data_, bytes), "cudaMalloc");
  bytes_ = bytes;
}

PinnedBuffer::~PinnedBuffer() { cudaFreeHost(data_); }

void PinnedBuffer::ensure(uint64_t bytes) {
  if (bytes <= bytes_) return;
  cudaFreeHost(data_);
  data_ = nullptr;
  bytes_ = 0;
  check(cudaHostAlloc(&data_, bytes, cudaHostAllocPortable), "cudaHostAlloc");
  bytes_ = bytes;
}

Stream::Stream() { check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate"); }
Stream::~Stream() { cudaStreamDestroy(stream_); }
void Stream::synchronize() const { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

Event::Event() { check(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "cudaEventCreate"); }
Event::~Event() { cudaEventDestroy(event_); }
void Event::record(cudaStream_t stream) { check(cudaEventRecord(event_, stream), "cudaEventRecord"); }
void Event::synchronize() const { check(cudaEventSynchronize(event_), "cudaEventSynchronize"); }

CublasHandle::CublasHandle(cudaStream_t stream) {
  check_cublas(cublasCreate(&handle_), "cublasCreate");
  check_cublas(cublasSetStream(handle_, stream), "cublasSetStream");
  // f32 GEMMs in f32 (the default math mode takes no TF32 shortcut): results stay within f32
  // rounding of the CPU's.
  check_cublas(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
}
CublasHandle::~CublasHandle() { cublasDestroy(handle_); }

}  // namespace moe::cuda
