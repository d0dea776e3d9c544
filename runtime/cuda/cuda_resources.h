#pragma once
// Owners of CUDA resources for the host side: device and pinned buffers that grow on demand,
// streams, events and a cuBLAS handle, each freed on destruction and every call checked.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace moe::cuda {

// Throws moe::Error(kCuda) naming `what` when `status` is not CUBLAS_STATUS_SUCCESS.
void check_cublas(cublasStatus_t status, const char* what);

// Device memory on the current device; ensure() grows it (the old contents are dropped, so the
// caller synchronises the streams using it first).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(uint64_t bytes) { ensure(bytes); }
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void ensure(uint64_t bytes);
  void reset();
  template <typename T = std::byte>
  T* get() const { return static_cast<T*>(data_); }
  uint64_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  uint64_t bytes_ = 0;
};

// Page-locked host memory (full-speed, asynchronous copies).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(uint64_t bytes) { ensure(bytes); }
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void ensure(uint64_t bytes);
  template <typename T = std::byte>
  T* get() const { return static_cast<T*>(data_); }

 private:
  void* data_ = nullptr;
  uint64_t bytes_ = 0;
};

class Stream {
 public:
  Stream();  // non-blocking, on the current device
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
};

class Event {
 public:
  Event();  // without timing: only for ordering
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t stream);
  void synchronize() const;

 private:
  cudaEvent_t event_ = nullptr;
};

class CublasHandle {
 public:
  explicit CublasHandle(cudaStream_t stream);
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

}  // namespace moe::cuda
